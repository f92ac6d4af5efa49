"""Sign-in (with its two-factor step), sign-out and the user's own settings (UI language,
password, two-factor sign-in, passkeys) as pages, one module per part: `sign_in`, `profile`
(the account page: sessions, language, password), `two_factor` and `passkeys`."""
