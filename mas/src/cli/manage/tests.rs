//! Tests of the `manage` verbs against a real database and the mock homeserver.
