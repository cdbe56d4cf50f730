//! Request extractors and the response parts that go with them: private cookies and CSRF
//! tokens so far (the session, bearer and client-authentication extractors come with the
//! endpoints).

pub mod bearer;
pub mod client_auth;
pub mod client_ip;
pub mod cookies;
pub mod csrf;
pub mod params;
pub mod registrations;
pub mod session;

pub use self::cookies::{CookieJar, CookieManager};
pub use self::csrf::{CsrfError, CsrfToken};
