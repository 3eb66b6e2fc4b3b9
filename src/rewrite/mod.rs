//! Rewriting what members say about themselves into the array's names.
//!
//! A [`RewritePlan`] is built once per configuration. The proxy then:
//!
//! - asks members for unencoded answers on rewritten routes
//!   ([`request_identity_encoding`]);
//! - rewrites every response head ([`rewrite_response_headers`]);
//! - for services with `rewrite = true` and a body chosen by
//!   [`should_rewrite_body`] (Autodiscover:
//!   [`should_rewrite_autodiscover_body`], which adds its flavours' XML,
//!   SOAP and JSON types), drops `Content-Length` and wraps the body in a
//!   [`RewriteBody`] (Autodiscover answers get [`RewriteBody::autodiscover`],
//!   others [`RewriteBody::generic`]). Every other body passes byte for byte.
//!
//! Member names, fqdns and addresses become the array's public name, found
//! ASCII case-insensitively and only where they stand alone as host names
//! (see `patterns`). When clients reach the array on a port other than 443
//! (`[array] public_port`), `https://` URLs naming a member (and their
//! percent-escaped forms) also get that port: `https://ex1.lab.local/EWS/`
//! becomes `https://mail.lab.com:8443/EWS/`, in headers and bodies alike,
//! while a bare host name gets none. Autodiscover answers name each
//! database's RPC client access server: the POX EXCH `<Server>` and the
//! SOAP `InternalRpcClientServer` setting. The one exception, as in
//! Exchange: a database without an RPC client access server keeps the
//! server the member gave there.

mod autodiscover;
mod body;
mod candidates;
mod headers;
mod patterns;
mod plan;
mod protocol;
mod stream;
mod user_settings;

pub use autodiscover::{AutodiscoverRewriter, DEFAULT_MAX_ELEMENT};
pub use body::{BodyRewriter, RewriteBody};
pub use headers::{
    request_identity_encoding, rewrite_response_headers, should_rewrite_autodiscover_body,
    should_rewrite_body, SERVER_IDENTITY_HEADERS,
};
pub use plan::{names_member, MemberIdentity, RewritePlan};
pub use stream::StreamRewriter;
