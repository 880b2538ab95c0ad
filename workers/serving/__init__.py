"""The serving engine (worker-only: imports torch). The web talks to it through store/inference/."""
