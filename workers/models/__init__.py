"""Loading models and tokenizers from the store's folders: shared by the training loop and the engine."""
