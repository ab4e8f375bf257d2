"""Real network peers for tests: a Twilio REST stand-in and an SMTP server, both on loopback."""
