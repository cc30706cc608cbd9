//! `wharf probe`: ask a running Wharf whether it is healthy, for container
//! health checks (the image's `HEALTHCHECK`, docker-compose) where no HTTP
//! client is installed.
//!
//! A deliberately small HTTP/1.1 client on a blocking socket: one GET, the
//! status line read, exit 0 for 2xx. Over HTTPS it accepts any certificate
//! (it talks to its own process over loopback, where the certificate's name
//! never matches), while still checking the handshake's signatures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::Config;

/// Path probed when no URL is given: 200 only when the database and the
/// store answer.
pub const DEFAULT_PATH: &str = "/api/v2.0/health";

/// The URL to probe for `config`: its `listen` address (an unspecified
/// address becomes loopback), over https when TLS is on.
pub fn default_url(config: &Config) -> String {
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    let listen = config.listen.trim();
    let (host, port) = match listen.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']), port),
        None => (listen, "8080"),
    };
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" => "[::1]".to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("{scheme}://{host}:{port}{DEFAULT_PATH}")
}

/// GET `url`; `Ok(status)` when it answered 2xx, an error otherwise.
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let https = match parsed.scheme() {
        "http" => false,
        "https" => true,
        other => bail!("cannot probe a {other}:// URL"),
    };
    let host = parsed
        .host_str()
        .with_context(|| format!("{url} has no host"))?
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("{url} has no port"))?;
    let addr: SocketAddr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: wharf-probe\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    let status_line = if https {
        let config = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate::new()))
            .with_no_client_auth();
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .with_context(|| format!("{host} is not a server name"))?;
        let mut conn =
            rustls::ClientConnection::new(Arc::new(config), name).context("cannot start TLS")?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        exchange(&mut tls, &request)?
    } else {
        exchange(&mut tcp, &request)?
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {:?}", status_line.trim()))?;
    if !(200..300).contains(&status) {
        bail!("{url} answered {}", status_line.trim());
    }
    Ok(status)
}

/// Send `request` and return the status line of the answer.
fn exchange(stream: &mut (impl Read + Write), request: &str) -> anyhow::Result<String> {
    stream
        .write_all(request.as_bytes())
        .context("cannot send the request")?;
    stream.flush()?;
    let mut line = String::new();
    BufReader::new(stream.take(8192))
        .read_line(&mut line)
        .context("no answer")?;
    Ok(line)
}

/// Accepts whatever certificate the server shows, but verifies that the
/// handshake was signed by its key.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl AnyCertificate {
    fn new() -> Self {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        Self { provider }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_follows_listen_and_tls() {
        let mut config = Config::default();
        assert_eq!(
            default_url(&config),
            "http://127.0.0.1:8080/api/v2.0/health"
        );
        config.listen = "0.0.0.0:5000".into();
        assert_eq!(
            default_url(&config),
            "http://127.0.0.1:5000/api/v2.0/health"
        );
        config.listen = "[::]:443".into();
        config.tls.cert = Some("/c".into());
        config.tls.key = Some("/k".into());
        assert_eq!(default_url(&config), "https://[::1]:443/api/v2.0/health");
    }

    #[test]
    fn statuses_other_than_2xx_fail() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in ["HTTP/1.1 200 OK", "HTTP/1.1 503 Service Unavailable"] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let n = conn.read(&mut request).unwrap();
                assert!(request[..n].starts_with(b"GET /api/v2.0/health HTTP/1.1\r\n"));
                conn.write_all(format!("{answer}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .unwrap();
            }
        });
        let url = format!("http://127.0.0.1:{port}/api/v2.0/health");
        assert_eq!(probe(&url, Duration::from_secs(5)).unwrap(), 200);
        let err = probe(&url, Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("503"), "{err}");
        server.join().unwrap();
        let err = probe(&url, Duration::from_secs(2)).unwrap_err().to_string();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
