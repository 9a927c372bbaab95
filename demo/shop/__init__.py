"""A tiny shop whose orders get reminders, payment captures and reports as scheduled jobs."""
