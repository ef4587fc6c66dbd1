// agents/examples/gateway_sdk.mjs - the official OpenAI Node SDK through
// bursar-gateway: nothing changes but the base URL and the key.
//   OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=bsk-... node gateway_sdk.mjs
import OpenAI from 'openai';

const client = new OpenAI(); // reads OPENAI_BASE_URL and OPENAI_API_KEY

// bursar routes within the bucket "extraction"; the JSON schema is
// checked, and a failing answer escalates to another model.
const { data, response } = await client.chat.completions
  .create({
    model: 'bursar/extraction',
    messages: [{ role: 'user', content: 'Extract: Ada Lovelace, born 1815.' }],
    response_format: {
      type: 'json_schema',
      json_schema: {
        name: 'person',
        schema: {
          type: 'object',
          properties: { name: { type: 'string' }, born: { type: 'integer' } },
          required: ['name', 'born'],
          additionalProperties: false,
        },
      },
    },
  })
  .withResponse();
console.log(data.choices[0].message.content);
console.log('served by', data.model, 'after',
            response.headers.get('x-bursar-escalations'), 'escalation(s)');

const stream = await client.chat.completions.create({
  model: 'bursar/auto',
  messages: [{ role: 'user', content: 'Say hello.' }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) console.log('streamed:', text, '| usage:', chunk.usage);
}
