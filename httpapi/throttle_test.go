package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// tokenFailure makes a token request that fails before authentication (no
// grant_type) from the address, naming the client id when it is not "".
func tokenFailure(s *Server, remoteAddr, clientID string) *httptest.ResponseRecorder {
	form := url.Values{}
	if clientID != "" {
		form.Set("client_id", clientID)
		form.Set("client_secret", "wcs_wrong")
	}
	r := httptest.NewRequest(http.MethodPost, BasePath+"/oauth/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remoteAddr
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestTokenFailuresPerClientAndAddress: failures count against a client id
// from one address, so failing with a partner's public client id elsewhere
// does not lock the partner out; the pair that failed is blocked.
func TestTokenFailuresPerClientAndAddress(t *testing.T) {
	t.Parallel()
	s := New(Config{Limits: Limits{ClientFailures: 3, AddressFailures: 100}})
	const attacker, partner, client = "192.0.2.66:4000", "198.51.100.7:5000", "wc_partnerAAAAAAAAAAAAAAAA"
	for i := range 3 {
		if w := tokenFailure(s, attacker, client); w.Code != http.StatusBadRequest {
			t.Fatalf("failure %d: %d %s, want 400", i, w.Code, w.Body)
		}
	}
	tests := []struct {
		name       string
		addr, id   string
		wantStatus int
	}{
		{"the pair that failed", attacker, client, http.StatusTooManyRequests},
		{"the pair from another port", "192.0.2.66:4001", client, http.StatusTooManyRequests},
		{"the client from another address", partner, client, http.StatusBadRequest},
		{"another client from the address", attacker, "wc_otherBBBBBBBBBBBBBBBBBB", http.StatusBadRequest},
		{"the address without a client id", attacker, "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		if w := tokenFailure(s, tt.addr, tt.id); w.Code != tt.wantStatus {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.wantStatus)
		}
	}
}

// TestTokenFailuresPerAddressIPv6: an IPv6 address counts by its /64, so
// walking through one's own block buys no fresh count.
func TestTokenFailuresPerAddressIPv6(t *testing.T) {
	t.Parallel()
	s := New(Config{Limits: Limits{ClientFailures: 100, AddressFailures: 3}})
	for i := range 3 {
		if w := tokenFailure(s, fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1), ""); w.Code != http.StatusBadRequest {
			t.Fatalf("failure %d: %d %s, want 400", i, w.Code, w.Body)
		}
	}
	tests := []struct {
		name       string
		addr       string
		wantStatus int
	}{
		{"another address of the /64", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", http.StatusTooManyRequests},
		{"with a zone", "[2001:db8:1:2::9%eth0]:443", http.StatusTooManyRequests},
		{"the next /64", "[2001:db8:1:3::1]:443", http.StatusBadRequest},
		{"an IPv4 address", "192.0.2.1:443", http.StatusBadRequest},
	}
	for _, tt := range tests {
		if w := tokenFailure(s, tt.addr, ""); w.Code != tt.wantStatus {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.wantStatus)
		}
	}
}

func TestAddressOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1:1", "192.0.2.1:2", true},
		{"192.0.2.1:1", "192.0.2.2:1", false},
		{"192.0.2.1:1", "[::ffff:192.0.2.1]:1", true},
		{"[2001:db8::1]:1", "[2001:db8::2]:1", true},
		{"[2001:db8::1]:1", "[2001:db8:0:0:8000::1]:1", true},
		{"[2001:db8::1]:1", "[2001:db8:0:1::1]:1", false},
		{"[fe80::1%eth0]:1", "[fe80::2%eth1]:1", true},
		{"2001:db8::1", "[2001:db8::2]:1", true},
		{"[::ffff:0:0]:1", "0.0.0.0:1", true},
		{"[2001:db8::1]:1", "192.0.2.1:1", false},
	}
	for _, tt := range tests {
		if got := addressOf(tt.a) == addressOf(tt.b); got != tt.same {
			t.Errorf("addressOf(%q) == addressOf(%q) is %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// TestTokenFailuresLongClientIDs: the throttle keeps a fixed-size key per
// client id, not the id itself, however long the ids callers send.
func TestTokenFailuresLongClientIDs(t *testing.T) { //nolint:paralleltest // measures the heap
	s := New(Config{Limits: Limits{ClientFailures: 30, AddressFailures: 1000}})
	const ids, size = 200, 60 << 10
	long := strings.Repeat("x", size)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range ids {
		if w := tokenFailure(s, "192.0.2.1:1", fmt.Sprint(i, long)); w.Code != http.StatusBadRequest {
			t.Fatalf("failure %d: %d, want 400", i, w.Code)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > ids*size/10 {
		t.Errorf("the heap grew by %d bytes after %d failures with %d KiB client ids", grown, ids, size>>10)
	}
}

// TestFailureCountFull: a count full of live windows takes no new keys, keeps
// counting the keys it holds, and looks for ended windows at most once a
// window instead of on every failure.
func TestFailureCountFull(t *testing.T) {
	t.Parallel()
	const window = time.Minute
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newFailureCount[int](2)
	c.maxKeys = 3
	for k := range 3 {
		c.add(k, t0, window)
	}
	steps := []struct {
		name       string
		key        int
		at         time.Duration // after t0
		wantKeys   int
		wantSweeps int
		wantCount  int           // of key, 0: absent
		wantWait   time.Duration // of key
	}{
		{"a new key when full", 10, time.Second, 3, 1, 0, 0},
		{"more new keys when full", 11, 2 * time.Second, 3, 1, 0, 0},
		{"and more", 12, 30 * time.Second, 3, 1, 0, 0},
		{"a key it holds", 0, 30 * time.Second, 3, 1, 2, 30 * time.Second},
		{"after the window of the sweep", 13, window + 2*time.Second, 1, 2, 1, 0},
		{"room again", 14, window + 3*time.Second, 2, 2, 1, 0},
	}
	for _, st := range steps {
		c.add(st.key, t0.Add(st.at), window)
		if len(c.m) != st.wantKeys || c.sweeps != st.wantSweeps || c.m[st.key].count != st.wantCount {
			t.Errorf("%s: %d keys, %d sweeps, count %d; want %d, %d, %d",
				st.name, len(c.m), c.sweeps, c.m[st.key].count, st.wantKeys, st.wantSweeps, st.wantCount)
		}
		if wait := c.wait(st.key, t0.Add(st.at), window); wait != st.wantWait {
			t.Errorf("%s: waits %s, want %s", st.name, wait, st.wantWait)
		}
	}
}

// TestFailureThrottleFullPairs: when the pairs are full of live windows, a new
// pair goes uncounted but the address count still applies.
func TestFailureThrottleFullPairs(t *testing.T) {
	t.Parallel()
	f := newFailureThrottle(Limits{ClientFailures: 1, AddressFailures: 3})
	f.pairs.maxKeys = 2
	now := time.Now()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	other := httptest.NewRequest(http.MethodPost, "/", nil)
	other.RemoteAddr = "198.51.100.1:1"
	f.fail(now, f.callerOf(other, "wc_a"))
	f.fail(now, f.callerOf(other, "wc_b"))
	for i := range 3 {
		c := f.callerOf(r, fmt.Sprint("wc_new", i))
		if blocked, _ := f.blocked(now, c); blocked {
			t.Fatalf("failure %d: blocked before reaching a limit", i)
		}
		f.fail(now, c)
	}
	if len(f.pairs.m) != 2 {
		t.Errorf("%d pairs, want the 2 the count holds", len(f.pairs.m))
	}
	if blocked, _ := f.blocked(now, f.callerOf(r, "wc_another")); !blocked {
		t.Error("the address is not blocked after 3 failures")
	}
}

// TestClientAddrBehindProxies: behind trusted proxies a request counts
// against the address X-Forwarded-For gives, the right-most that is not a
// trusted proxy; from anywhere else the header is the caller's word and
// counts for nothing.
func TestClientAddrBehindProxies(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		proxies []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies configured", nil, "10.0.0.1:4000", []string{"203.0.113.7"}, "10.0.0.1"},
		{"from a trusted proxy", proxies, "10.0.0.1:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a forged hop left of the real one", proxies, "10.0.0.1:4000", []string{"198.51.100.9, 203.0.113.7"}, "203.0.113.7"},
		{"through two proxies", proxies, "10.0.0.1:4000", []string{"203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"over two header lines", proxies, "10.0.0.1:4000", []string{"198.51.100.9", "203.0.113.7"}, "203.0.113.7"},
		{"from an untrusted address", proxies, "192.0.2.1:4000", []string{"203.0.113.7"}, "192.0.2.1"},
		{"no header", proxies, "10.0.0.1:4000", nil, "10.0.0.1"},
		{"a hop that is no address", proxies, "10.0.0.1:4000", []string{"203.0.113.7, unknown"}, "10.0.0.1"},
		{"only proxies", proxies, "10.0.0.1:4000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"an IPv6 proxy", proxies, "[fd00::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"an IPv4-mapped hop", proxies, "10.0.0.1:4000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
	}
	for _, tt := range tests {
		f := newFailureThrottle(Limits{AddressFailures: 1, TrustedProxies: tt.proxies})
		r := httptest.NewRequest(http.MethodPost, "/oauth/token", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := f.clientAddr(r); got != netip.MustParseAddr(tt.want) {
			t.Errorf("%s: counted against %s, want %s", tt.name, got, tt.want)
		}
	}
}

// addressOf is the throttle key of a RemoteAddr (the port varies per
// connection). One that is not an IP address (a Unix socket's) is the zero key.
func addressOf(remoteAddr string) addressKey { return keyOf(parseRemote(remoteAddr)) }
