// The `ollama` npm client (ollama-js) against a live adapter in front of the real vLLM server.
// Run by tests/clients/test_js_client.py with OLLAMA_HOST set to the adapter's URL:
//
//   cd tests/clients/js && npm ci && OLLAMA_HOST=http://127.0.0.1:11434 node --test
//
// ollama-js throws "Did not receive done or success response in stream." when a chat or
// generate stream does not end with a `done: true` line, or a pull stream with
// `status: "success"`; these tests iterate the streams to their end so that error fails them.
// The tiny model's text is noise: the tests check shapes, counts and errors; SmolLM2-135M
// (smollm2:135m, a real model) checks that an answer is right.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Ollama } from 'ollama'

const host = process.env.OLLAMA_HOST
assert.ok(host, 'set OLLAMA_HOST to the adapter URL')
const ollama = new Ollama({ host })
const MODEL = 'tiny-llm'
const REAL = 'smollm2:135m'

test('a real model says Paris is the capital of France, streaming and not', async () => {
  const messages = [{ role: 'user', content: 'What is the capital of France?' }]
  const options = { temperature: 0 }
  const whole = await ollama.chat({ model: REAL, messages, options })
  assert.match(whole.message.content, /Paris/)
  let streamed = ''
  for await (const part of await ollama.chat({ model: REAL, messages, options, stream: true })) {
    streamed += part.message.content
  }
  assert.match(streamed, /Paris/)
  const said = await ollama.generate({ model: REAL, prompt: messages[0].content, options })
  assert.match(said.response, /Paris/)
})

test('version is X.Y.Z and at least 0.6.4', async () => {
  const { version } = await ollama.version()
  const parts = version.split('.').map(Number)
  assert.equal(parts.length, 3, version)
  assert.ok(parts[0] > 0 || parts[1] > 6 || (parts[1] === 6 && parts[2] >= 4), version)
})

test('list names every served model with a tag', async () => {
  const { models } = await ollama.list()
  const names = models.map((m) => m.model)
  assert.ok(names.includes('tiny-llm:latest'), names.join(','))
  assert.ok(names.includes('llama3.2:latest'), names.join(','))
  for (const m of models) {
    assert.equal(m.name, m.model)
    assert.ok(!Number.isNaN(Date.parse(m.modified_at)), m.modified_at)
  }
})

test('chat streaming ends with one done line that carries the counts', async () => {
  const stream = await ollama.chat({
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me about the sea.' }],
    stream: true,
    options: { num_predict: 12, seed: 7 },
  })
  const parts = []
  for await (const part of stream) parts.push(part)
  const last = parts.at(-1)
  assert.equal(last.done, true)
  assert.ok(['stop', 'length'].includes(last.done_reason), last.done_reason)
  assert.ok(last.eval_count >= 1 && last.eval_count <= 12, String(last.eval_count))
  assert.ok(last.prompt_eval_count > 0)
  assert.equal(parts.filter((p) => p.done).length, 1)
  for (const p of parts) {
    assert.equal(p.message.role, 'assistant')
    assert.equal(typeof p.message.content, 'string')
  }
})

test('chat not streaming', async () => {
  const resp = await ollama.chat({
    model: 'llama3.2',
    messages: [{ role: 'user', content: 'Hi' }],
    options: { num_predict: 5 },
  })
  assert.equal(resp.done, true)
  assert.equal(resp.message.role, 'assistant')
  assert.equal(typeof resp.message.content, 'string')
  assert.ok(resp.eval_count <= 5)
})

test('generate streaming ends with done', async () => {
  const stream = await ollama.generate({
    model: MODEL,
    prompt: 'Once upon a time',
    stream: true,
    options: { num_predict: 8 },
  })
  const parts = []
  for await (const part of stream) parts.push(part)
  assert.equal(parts.at(-1).done, true)
  assert.ok(parts.every((p) => typeof p.response === 'string'))
})

test('pull streaming ends with status success', async () => {
  const stream = await ollama.pull({ model: MODEL, stream: true })
  const statuses = []
  for await (const part of stream) statuses.push(part.status)
  assert.equal(statuses.at(-1), 'success')
})

test('show reports the context length and capabilities', async () => {
  const resp = await ollama.show({ model: MODEL })
  const arch = resp.model_info['general.architecture']
  assert.equal(resp.model_info[`${arch}.context_length`], 512)
  assert.ok(resp.capabilities.includes('completion'))
})

test('ps lists loaded models with a parseable expiry', async () => {
  const { models } = await ollama.ps()
  const tiny = models.find((m) => m.model === 'tiny-llm:latest')
  assert.ok(tiny)
  assert.ok(Date.parse(tiny.expires_at) > Date.now())
  assert.equal(typeof tiny.size_vram, 'number')
})

test('an unknown model is a ResponseError with status 404', async () => {
  await assert.rejects(
    ollama.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => err.name === 'ResponseError' && err.status_code === 404,
  )
})

test('capabilities come from what vLLM showed, and Ollama\'s checks follow them', async () => {
  const plain = await ollama.show({ model: MODEL })
  assert.deepEqual(plain.capabilities, ['completion', 'tools'])
  const thinker = await ollama.show({ model: 'tiny-think' })
  assert.ok(thinker.capabilities.includes('thinking'), thinker.capabilities.join(','))
  const refused = (message) => (err) =>
    err.name === 'ResponseError' && err.status_code === 400 && err.error === message
  await assert.rejects(
    ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], think: true }),
    refused(`"${MODEL}" does not support thinking`),
  )
  await assert.rejects(
    ollama.generate({ model: MODEL, prompt: 'def f(', suffix: ')' }),
    refused(`"${MODEL}" does not support insert`),
  )
  const thought = await ollama.chat({
    model: 'tiny-think',
    messages: [{ role: 'user', content: 'hi' }],
    options: { num_predict: 6 },
  })
  assert.ok(thought.message.thinking, 'a thinking model thinks when think is unset')
})
