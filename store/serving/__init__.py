"""The serving engine. Worker-only: modules here import torch, except client.py and
protocol.py, which the web process uses to talk to the engine."""
