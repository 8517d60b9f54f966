"""The application of docs/testing.md's record-and-replay example: one chat completion, wherever
OPENAI_BASE_URL points (the real gateway, the recorder, the replay)."""

from openai import OpenAI

client = OpenAI(api_key="sk-my-key")
reply = client.chat.completions.create(model="glm-5", messages=[{"role": "user", "content": "Say hello"}])
print(reply.choices[0].message.content)
