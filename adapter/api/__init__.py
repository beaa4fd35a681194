"""The Ollama face of the adapter: request schemas, routes and NDJSON streaming."""
