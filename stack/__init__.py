"""The whole site on one machine: `manage.py runstack` (the Procfile under a supervisor), the demo
organization, models, bot and widget it seeds, and the demo shop. The top floor: it may import every app,
and none imports it (core, the ground floor, imports no app)."""
