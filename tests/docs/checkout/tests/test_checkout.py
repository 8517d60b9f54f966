"""The suite in docs/faults-and-timing.md's CI example: a checkout flow whose client meets a 429 and retries."""

import openai


def test_checkout_flow():
    client = openai.OpenAI(
        api_key="sk-shop",
        base_url="http://127.0.0.1:8000/v1",
        max_retries=2,
        default_headers={
            "x-emulator-test-id": "checkout-flow",
            "x-emulator-fault": "error=429; retry_after_ms=50; first=1",
        },
    )
    reply = client.chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": "Place my order"}]
    )
    assert reply.choices[0].message.content
