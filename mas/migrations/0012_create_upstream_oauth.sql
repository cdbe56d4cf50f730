-- Login through upstream OpenID providers (docs/protocol.md#upstream-login). Providers live in the
-- configuration only (`upstream_oauth2.providers[]`), so both tables name their provider by its
-- configured id (a ULID string) without a foreign key.

-- Who a provider's subject is here. `user_id` is NULL while the link waits for the person to
-- confirm the account it creates (links never bound to a user may be cleaned up, §15.3).
CREATE TABLE upstream_oauth_links (
    upstream_oauth_link_id TEXT NOT NULL PRIMARY KEY,
    upstream_oauth_provider_id TEXT NOT NULL,
    user_id TEXT NULL REFERENCES users (user_id),
    subject TEXT NOT NULL,
    human_account_name TEXT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT upstream_oauth_links_provider_subject_unique
        UNIQUE (upstream_oauth_provider_id, subject)
);

-- A user's links (on_conflict `set` / `replace` look them up per provider).
CREATE INDEX upstream_oauth_links_user_id_idx ON upstream_oauth_links (user_id);

-- One login attempt at a provider: created by `/upstream/authorize/{provider_id}` (state, nonce,
-- PKCE verifier, where to go afterwards), completed by the callback (the validated ID token,
-- its claims and the userinfo answer as JSON text, the link), consumed when a browser session
-- starts from it. `post_auth_action` is JSON text (`{"kind": …, "id": …}`).
-- `user_session_authentications.upstream_oauth_authorization_session_id` (migration 0004)
-- points here; SQLite cannot add a foreign key to an existing table, so it stays without one.
CREATE TABLE upstream_oauth_authorization_sessions (
    upstream_oauth_authorization_session_id TEXT NOT NULL PRIMARY KEY,
    upstream_oauth_provider_id TEXT NOT NULL,
    upstream_oauth_link_id TEXT NULL REFERENCES upstream_oauth_links (upstream_oauth_link_id),
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_challenge_verifier TEXT NULL,
    post_auth_action TEXT NULL,
    id_token TEXT NULL,
    id_token_claims TEXT NULL,
    userinfo TEXT NULL,
    created_at BIGINT NOT NULL,
    completed_at BIGINT NULL,
    consumed_at BIGINT NULL,
    CONSTRAINT upstream_oauth_authorization_sessions_state_unique UNIQUE (state)
);

CREATE INDEX upstream_oauth_authorization_sessions_link_idx
    ON upstream_oauth_authorization_sessions (upstream_oauth_link_id);
