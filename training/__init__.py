"""Fine-tuning pipeline for the intent, sentiment and generative models (see its issue)."""
