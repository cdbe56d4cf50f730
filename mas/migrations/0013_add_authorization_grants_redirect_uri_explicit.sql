-- Whether the `/authorize` request carried `redirect_uri` itself, rather than leaving it out
-- for the client's only registered one: RFC 6749 §4.1.3 then requires the token request to
-- repeat it, identical. Grants stored before this column existed count as not carrying it, so
-- their codes are exchanged as before (redirect_uri checked only when given).
ALTER TABLE oauth2_authorization_grants
    ADD COLUMN redirect_uri_explicit BOOLEAN NOT NULL DEFAULT FALSE;
