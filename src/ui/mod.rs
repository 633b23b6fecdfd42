//! `pipe ui`: a local, read-only web dashboard of the workspace's runs and sweeps, served on
//! 127.0.0.1 or exported as static pages. Every asset is inside the binary; nothing is fetched.
//!
//! ```text
//!   http      one request per connection, GET and HEAD only, paths decoded
//!   files     files under runs/ (figures, logs, records), nothing outside it
//!   html      escaping what records hold
//!   pages     the HTML of each page, the same served or exported
//!   serve     routes requests to pages and files; --export writes them all
//!   svg       line charts drawn as inline SVG, with a legend that hides a series
//! ```

pub mod files;
pub mod html;
pub mod http;
pub mod pages;
pub mod serve;
pub mod svg;
