package api_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"roundtable/listener/listenertest"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// Issue 10, item 4: the HTTP API's listeners hold against clients that
// send slowly, send too much, hold connections, or meet a process out of
// file descriptors. Every test serves on a real listener on 127.0.0.1
// through Server.Serve (or ServeLocal), with short limits.

type realServer struct {
	addr   string
	tokens map[api.Role]string
}

// serveReal serves a fake node on ln (a fresh 127.0.0.1 listener if nil)
// with the given limits and TLS until the test ends.
func serveReal(t *testing.T, ln net.Listener, lim api.Limits, tlsConf *tls.Config, local bool) *realServer {
	t.Helper()
	fake, err := apitest.New(apitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	rs := &realServer{tokens: map[api.Role]string{}}
	for _, r := range api.Roles() {
		if rs.tokens[r], err = store.Create(r, "test-"+string(r)); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: store, PublicReads: true, Limits: lim, TLS: tlsConf,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	rs.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if local {
			done <- srv.ServeLocal(ctx, ln)
		} else {
			done <- srv.Serve(ctx, ln)
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return rs
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedAfter reads c until the server closes it, and says how long that
// took; it fails the test if c is still open after limit.
func closedAfter(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// TestSlowBodyCutOff reproduces the finding: an anonymous client
// sends a request's headers, then its body a byte at a time. The read
// timeout closes the connection (at 45 s it was still open); an
// operator's request, once its token is checked, gets the longer
// operator timeout instead and is answered.
func TestSlowBodyCutOff(t *testing.T) {
	lim := api.Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, OperatorTimeout: 10 * time.Second}
	rs := serveReal(t, nil, lim, nil, false)
	trickle := func(c net.Conn, head string, body string, every time.Duration) {
		fmt.Fprint(c, head)
		for i := range len(body) {
			time.Sleep(every)
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}

	anon := dial(t, rs.addr)
	go trickle(anon, "POST /v1/governance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
		strings.Repeat(" ", 1000), 50*time.Millisecond)
	if d := closedAfter(t, anon, 5*time.Second); d > 2*time.Second {
		t.Errorf("slow body cut off after %v, want about the 500 ms read timeout", d)
	}

	// The operator's upload takes 1.5 s, three times the anonymous limit.
	body := "case_id,registered_on\nA1,2024-01-01\n"
	op := dial(t, rs.addr)
	go trickle(op, fmt.Sprintf("POST /v1/cases/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		rs.tokens[api.RoleOperator], len(body)), body, 1500*time.Millisecond/time.Duration(len(body)))
	_ = op.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(op), nil)
	if err != nil {
		t.Fatalf("operator's slow upload got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("operator's slow upload: status %d, want 200", resp.StatusCode)
	}
}

// TestIdleConnectionClosed: a kept-alive connection with no next request
// is closed after the idle timeout.
func TestIdleConnectionClosed(t *testing.T) {
	rs := serveReal(t, nil, api.Limits{IdleTimeout: 300 * time.Millisecond}, nil, false)
	c := dial(t, rs.addr)
	fmt.Fprint(c, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want closed by the server", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want about 300 ms", d)
	}
}

// TestHeaderLimit: headers over the default limit (32 KiB) are answered
// 431 without reaching a handler.
func TestHeaderLimit(t *testing.T) {
	rs := serveReal(t, nil, api.Limits{}, nil, false)
	for _, tt := range []struct {
		size int
		want int
	}{{8 << 10, http.StatusOK}, {64 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest("GET", "http://"+rs.addr+"/v1/health", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", tt.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d KiB of headers: status %d, want %d", tt.size>>10, resp.StatusCode, tt.want)
		}
	}
}

// TestHTTPConnectionCap: with MaxConns 2 held by clients that send
// nothing, a third client is not answered until one of them goes away.
func TestHTTPConnectionCap(t *testing.T) {
	rs := serveReal(t, nil, api.Limits{MaxConns: 2, ReadHeaderTimeout: 10 * time.Second}, nil, false)
	a, _ := dial(t, rs.addr), dial(t, rs.addr)
	time.Sleep(100 * time.Millisecond) // both accepted
	got := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 8 * time.Second}
		resp, err := c.Get("http://" + rs.addr + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("third connection answered (%v) while two were open (cap 2)", err)
	case <-time.After(500 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("third connection after a slot freed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third connection still waiting after a slot freed")
	}
}

// TestHTTPSurvivesAcceptErrors: accept errors, including ones net/http
// does not retry by itself (ECONNABORTED, ENOBUFS end its Serve), leave
// the API and the operator's socket serving.
func TestHTTPSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ECONNABORTED, syscall.ENOBUFS} {
		for _, local := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/local=%v", errno, local), func(t *testing.T) {
				network, addr := "tcp", "127.0.0.1:0"
				if local {
					network, addr = "unix", filepath.Join(t.TempDir(), "admin.sock")
				}
				ln, err := net.Listen(network, addr)
				if err != nil {
					t.Fatal(err)
				}
				fl := &listenertest.Failing{Listener: ln, Err: errno, N: 8}
				serveReal(t, fl, api.Limits{}, nil, local)
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
					}}}
				resp, err := c.Get("http://node/v1/health")
				if err != nil {
					t.Fatalf("after %d accept errors: %v", fl.N, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d, want 200", resp.StatusCode)
				}
			})
		}
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestHTTPSEndToEnd: with Config.TLS the API answers a client that
// trusts the certificate over HTTPS, refuses one that does not, and
// gives nothing to plain HTTP on the same port.
func TestHTTPSEndToEnd(t *testing.T) {
	cert, pool := selfSigned(t)
	rs := serveReal(t, nil, api.Limits{}, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, false)
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get("https://" + rs.addr + "/v1/health")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "in_cluster") {
		t.Fatalf("HTTPS /v1/health: %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil {
		t.Error("answer did not come over TLS")
	}
	// An operator token crosses only inside TLS; it still works there.
	req, _ := http.NewRequest("GET", "https://"+rs.addr+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+rs.tokens[api.RoleOperator])
	if resp, err := trusting.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("whoami over HTTPS: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("https://" + rs.addr + "/v1/health"); err == nil {
		t.Error("a client that does not trust the certificate was served")
	}
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + rs.addr + "/v1/health")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK || strings.Contains(string(b), "in_cluster") {
			t.Fatalf("plain HTTP to the HTTPS port served: %d %s", plain.StatusCode, b)
		}
	}
}
