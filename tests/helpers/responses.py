"""The Responses API tests' weather tool and its result."""

from __future__ import annotations

import json

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Obtains the weather information for a specified city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name, e.g. Beijing"}},
        "required": ["city"],
    },
}


WEATHER_RESULT = json.dumps({"weather": "sunny", "temperature": 26, "humidity": 40})

