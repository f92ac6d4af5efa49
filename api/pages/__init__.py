"""Server-rendered pages for guards and staff: the same sessions and services as the JSON API."""
