"""welfare: the domain. Imports neither FastAPI, Twilio, `api` nor `notifications`."""
