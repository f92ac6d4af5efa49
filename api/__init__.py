"""HTTP: the FastAPI app factory, routers, auth dependencies and (later) Twilio webhooks."""
