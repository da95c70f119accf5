//! Streetscope's traffic dashboard.
//!
//! - [`view`]: the view model. Result records ([`ResultRecord`]) and camera
//!   specs in, the figures of each page out: a city overview, an intersection
//!   page, a camera page. Pure, tested with data.
//! - [`chart`]: the day's 15-minute bins as an SVG bar chart, drawn on the server.
//! - [`snapshot`]: the latest snapshot per camera (the picture and what was seen
//!   in it, joined by frame), drawn with its counting lines and zones on demand.
//! - [`draw`]: lines, polygons, boxes and labels on images.
//! - [`server`]: the web server (axum): pages, their JSON, live updates as
//!   server-sent events, snapshots; read-only; bearer tokens when exposed.
//!
//! Whoever has the records feeds a [`DashboardHandle`]: `streetscope run --ui`
//! from its in-process results, `streetscope dashboard` from the result topics.
//!
//! [`ResultRecord`]: streetscope_contracts::records::ResultRecord

pub mod chart;
pub mod draw;
pub mod server;
pub mod snapshot;
pub mod view;

pub use server::{serve, DashboardHandle, PageQuery, ServeOptions};
pub use view::Dashboard;
