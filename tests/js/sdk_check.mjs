// Drives the official `openai` npm package against a live GPT Store; prints one JSON object.
// Used by tests/store/test_sdk_javascript.py (env: GPT_STORE_URL, GPT_STORE_KEY, CHAT_MODEL, TRAINING_FILE).
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ baseURL: process.env.GPT_STORE_URL + "/v1", apiKey: process.env.GPT_STORE_KEY, maxRetries: 0 });
const model = process.env.CHAT_MODEL;
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const reply = await client.chat.completions.create({ model, max_tokens: 8, messages: [{ role: "user", content: "Hello" }] });
out.reply = { object: reply.object, content: reply.choices[0].message.content, usage: reply.usage };

const stream = await client.chat.completions.create({
  model, max_tokens: 8, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Hello" }],
});
let streamed = "";
const finishes = [];
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) {
    streamed += chunk.choices[0].delta.content ?? "";
    if (chunk.choices[0].finish_reason) finishes.push(chunk.choices[0].finish_reason);
  }
  if (chunk.usage) usage = chunk.usage;
}
out.stream = { text: streamed, finishes, usage };

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  out.notFound = null;
} catch (error) {
  out.notFound = { status: error.status, code: error.code, param: error.param };
}
try {
  await client.chat.completions.create({ model, n: 3, messages: [{ role: "user", content: "x" }] });
  out.badRequest = null;
} catch (error) {
  out.badRequest = { status: error.status, param: error.param };
}

// Embeddings: the SDK asks for base64 by default and decodes it; floats on request must agree.
const embedded = await client.embeddings.create({ model: process.env.EMBEDDING_MODEL, input: ["hello", "world"] });
const asFloats = await client.embeddings.create({
  model: process.env.EMBEDDING_MODEL, input: "hello", encoding_format: "float",
});
out.embeddings = {
  count: embedded.data.length, dim: embedded.data[0].embedding.length, usage: embedded.usage,
  decoded: Array.from(embedded.data[0].embedding.slice(0, 8)), floats: asFloats.data[0].embedding.slice(0, 8),
};

const file = await client.files.create({
  file: await toFile(fs.readFileSync(process.env.TRAINING_FILE), "moods.csv"), purpose: "fine-tune",
});
const job = await client.fineTuning.jobs.create({
  model: "tiny-encoder", training_file: file.id, hyperparameters: { n_epochs: 50 },
});
const again = await client.fineTuning.jobs.retrieve(job.id);
const cancelled = await client.fineTuning.jobs.cancel(job.id);
out.fineTuning = { file: file.id, job: job.id, retrieved: again.id, status: job.status, cancelled: cancelled.status };

console.log(JSON.stringify(out));
