package wire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An agent that holds its certificate needs its server key no more (install.sh says the
// key file may be deleted): it authenticates each request to the panel's agent endpoints
// with its certificate and a signature by its key,
//
//	Authorization: Cert cert=<base64 DER>, ts=<unix seconds>, sig=<base64 ECDSA signature>
//
// over the method, the path (Prefix included, no query), the time and the body's SHA-256.
// It works behind a proxy that terminates TLS, where a client certificate would not
// arrive. The panel checks the signature, the time (CertAuthSkew either way), that the
// certificate chains to its CA and names a server it issued that certificate to.
const certAuthScheme = "Cert "

// CertAuthSkew is how far a signed request's time may be from the panel's clock.
const CertAuthSkew = 5 * time.Minute

func certAuthMessage(method, path string, ts int64, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte("clusterducks agent request\n" + method + "\n" + path + "\n" + strconv.FormatInt(ts, 10) + "\n" + hex.EncodeToString(sum[:]))
}

// CertAuthorization is the Authorization value of a request (method, path with Prefix,
// body) signed at now by the agent's key for its certificate.
func CertAuthorization(cert *x509.Certificate, key crypto.Signer, method, path string, body []byte, now time.Time) (string, error) {
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		return "", errors.New("certificate authentication needs the agent's ECDSA key")
	}
	ts := now.Unix()
	digest := sha256.Sum256(certAuthMessage(method, path, ts, body))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign the request: %w", err)
	}
	return certAuthScheme + "cert=" + base64.StdEncoding.EncodeToString(cert.Raw) + ", ts=" + strconv.FormatInt(ts, 10) +
		", sig=" + base64.StdEncoding.EncodeToString(sig), nil
}

// IsCertAuthorization reports whether an Authorization value is a certificate's.
func IsCertAuthorization(h string) bool {
	return strings.HasPrefix(strings.TrimSpace(h), certAuthScheme)
}

// VerifyCertAuthorization checks a signed request's signature and time and returns the
// certificate it was signed for; whether that certificate is one the panel issued, to
// which server, is the caller's to check.
func VerifyCertAuthorization(h, method, path string, body []byte, now time.Time) (*x509.Certificate, error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, certAuthScheme) {
		return nil, errors.New("not a certificate authorization")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(strings.TrimPrefix(h, certAuthScheme), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return nil, fmt.Errorf("malformed certificate authorization field %q", f)
		}
		fields[k] = v
	}
	der, err := base64.StdEncoding.DecodeString(fields["cert"])
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	ts, err := strconv.ParseInt(fields["ts"], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("ts: %w", err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > CertAuthSkew || d < -CertAuthSkew {
		return nil, fmt.Errorf("the request was signed at %s, %s from the panel's clock (at most %s)", time.Unix(ts, 0).UTC().Format(time.RFC3339), d.Round(time.Second), CertAuthSkew)
	}
	sig, err := base64.StdEncoding.DecodeString(fields["sig"])
	if err != nil {
		return nil, fmt.Errorf("sig: %w", err)
	}
	if err := cert.CheckSignature(x509.ECDSAWithSHA256, certAuthMessage(method, path, ts, body), sig); err != nil {
		return nil, fmt.Errorf("the signature does not match the certificate: %w", err)
	}
	return cert, nil
}
