package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gateMetrics reads session_gate's counters from Caddy's admin /metrics:
// "refreshes_total/ok", "requests_total/valid" and so on.
func gateMetrics(adminPort int) (map[string]float64, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "caddy_session_gate_")
		if !ok {
			continue
		}
		// refreshes_total{outcome="ok"} 12
		name, rest, _ := strings.Cut(line, "{")
		label, value, _ := strings.Cut(rest, "} ")
		_, label, _ = strings.Cut(label, `="`)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		m[name+"/"+strings.TrimSuffix(label, `"`)] = v
	}
	return m, sc.Err()
}

// crossCheckMetrics compares what the gate counted with what the people
// saw. The counters are the process's (reloads do not reset them); the
// checks below cover only answers the soak alone causes. A mismatch is
// recorded as an unexpected answer of /metrics.
func crossCheckMetrics(st *stats, adminPort int) []string {
	m, err := gateMetrics(adminPort)
	if err != nil {
		st.unexpected("metrics: " + err.Error())
		return []string{"metrics: " + err.Error()}
	}
	// A person cannot tell a rotation from a lost reply's token rotated
	// again: both are a 200 with a new refresh cookie.
	m["refreshes_total/ok+rerotated"] = m["refreshes_total/ok"] + m["refreshes_total/rerotated"]
	c := st.counts()
	sum := func(ks ...kind) float64 {
		var n int64
		for _, k := range ks {
			n += c[k]
		}
		return float64(n)
	}
	checks := []struct {
		metric string
		want   float64
		from   string
	}{
		{"refreshes_total/ok+rerotated", sum(kRefreshOK, kRefreshGrace, kDropped), "refresh_rotated + refresh_grace + refresh_reply_dropped"},
		{"refreshes_total/refused", sum(kRefused), "refresh_refused"},
		{"refreshes_total/store_unavailable", sum(kStoreDown), "store_unavailable"},
		{"refreshes_total/session_started", sum(kSignin), "signin"},
		{"refreshes_total/signed_out", sum(kSignout), "signout"},
		{"requests_total/valid", sum(kPage, kAPI, kJWKSOK), "page_ok + api_ok + jwks_gate_ok"},
		{"requests_total/expired", sum(kInterstitial, kTryRefresh, kJWKSExpired, kRevoked), "interstitial + api_try_refresh + jwks_gate_expired + revoked_token_refused"},
		{"requests_total/missing", sum(kAnonRedirect, kAnonAPI), "anonymous_redirect + anonymous_api"},
		{"requests_total/invalid", sum(kLoginRedirect, kUnauthorised, kJWKSInvalid, kJWKSUnknownKID), "login_redirect + api_unauthorised + jwks_gate_forged + jwks_gate_unknown_kid"},
	}
	var out []string
	bad := 0
	for _, ch := range checks {
		got := m[ch.metric]
		if got != ch.want && st.unexpect.Load() == 0 {
			bad++
			st.unexpected(fmt.Sprintf("metrics: caddy_session_gate_%s = %.0f, the people saw %.0f (%s)", ch.metric, got, ch.want, ch.from))
		}
		out = append(out, fmt.Sprintf("%s %.0f", ch.metric, got))
	}
	verdict := "all match what the people saw"
	if bad > 0 {
		verdict = fmt.Sprintf("%d MISMATCHES", bad)
	} else if st.unexpect.Load() > 0 {
		verdict = "not compared (unexpected answers make the counts differ)"
	}
	return []string{strings.Join(out, ", ") + ": " + verdict}
}
