"""What the web process needs to ask an inference worker: the client (send, stream, cancel, notice a dead
worker) and the request protocol. Web-safe: no torch here; the engine lives in workers/serving/."""
