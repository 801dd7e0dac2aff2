//! Which web pages may open streams: the `Origin` check of a stream
//! upgrade (`--allowed-origins`, and the server's own origin).

use axum::http::{header, HeaderMap};

use super::ApiError;

/// The browser origins allowed to open streams, lower case, without a
/// trailing slash.
#[derive(Debug, Clone)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// The origins `--allowed-origins` lists, and the server's own (its
    /// public URL's), which may always open streams whatever the list says
    /// (API.md, the web app).
    pub fn new(listed: &[String], own: &str) -> AllowedOrigins {
        let mut origins: Vec<String> = listed
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|origin| !origin.is_empty())
            .collect();
        origins.push(own.to_ascii_lowercase());
        AllowedOrigins(origins)
    }

    /// A stream upgrade from a browser page is allowed only from these
    /// origins (403 `origin_not_allowed`); clients that send no Origin are
    /// not browsers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        if self
            .0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "origin_not_allowed",
            format!(
                "streams may not be opened from the web origin {origin:?}; the server's operator can allow it with --allowed-origins"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_the_allow_list_exactly() {
        let listed = [
            "https://Console.example.org/".to_owned(),
            " https://b.example".to_owned(),
            String::new(),
        ];
        let origins = AllowedOrigins::new(&listed, "http://127.0.0.1:8080");
        let with = |origin: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ORIGIN, origin.parse().expect("header value"));
            origins.check(&headers).is_ok()
        };
        assert!(origins.check(&HeaderMap::new()).is_ok());
        assert!(with("https://console.example.org"));
        assert!(with("https://b.example"));
        assert!(with("http://127.0.0.1:8080"), "its own origin");
        assert!(!with("https://console.example.org.evil.com"));
        assert!(!with("http://console.example.org"));
        assert!(!with("null"));
        assert!(!with(""));
    }
}
