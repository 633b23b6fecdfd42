//! `pipe ui`: a local, read-only web dashboard of the workspace's runs and sweeps, served on
//! 127.0.0.1 or exported as static pages. Every asset is inside the binary; nothing is fetched.
//!
//! ```text
//!   http      one request per connection, GET and HEAD only, paths decoded
//!   files     files under runs/ (figures, logs, records), nothing outside it
//!   html      escaping what records hold
//!   markdown  a report's markdown as HTML, escaped, reaching nothing outside its folder
//!   confusion a classifier's confusion matrix as a shaded table
//!   svg       line and spread charts as inline SVG, with a legend that hides a series
//!   parallel  parallel coordinates from params to metrics as inline SVG
//!   pages     the HTML of each page, the same served or exported
//!   serve     routes requests to pages and files; --export writes them all
//! ```

pub mod confusion;
pub mod files;
pub mod html;
pub mod http;
pub mod markdown;
pub mod pages;
pub mod parallel;
pub mod serve;
pub mod svg;
