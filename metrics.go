package sessiongate

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/session-gate/session_gate/session"
)

// Counters of what the gate decided. Labels are bounded (verdicts, refresh
// outcomes, reasons), never a user or an address. The collectors live for the
// process; every config load registers them again in its own registry.
var (
	verdictsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "session_gate",
		Name:      "requests_total",
		Help:      "Requests seen by session_gate, by verdict on their access token (public: not checked; forbidden: valid, refused by authorize).",
	}, []string{"verdict"})
	refreshesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "session_gate",
		Name:      "refreshes_total",
		Help:      "Answers of the internal refresher, each counted once, by outcome.",
	}, []string{"outcome"})
	streamsClosedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "session_gate",
		Name:      "streams_closed_total",
		Help:      "Live connections (WebSockets, streamed responses) closed by session_gate, by reason (revoked, max_age).",
	}, []string{"reason"})
)

// Children resolved once, so that counting costs one atomic add.
var (
	countVerdict = [...]prometheus.Counter{
		session.Valid:   verdictsTotal.WithLabelValues("valid"),
		session.Expired: verdictsTotal.WithLabelValues("expired"),
		session.Missing: verdictsTotal.WithLabelValues("missing"),
		session.Invalid: verdictsTotal.WithLabelValues("invalid"),

		session.KeysUnavailable: verdictsTotal.WithLabelValues("keys_unavailable"),
	}
	countPublic    = verdictsTotal.WithLabelValues("public")
	countForbidden = verdictsTotal.WithLabelValues("forbidden") // valid, but an authorize block refused it

	countRefreshOK          = refreshesTotal.WithLabelValues("ok")        // rotated, or within the reuse grace
	countRefreshRerotated   = refreshesTotal.WithLabelValues("rerotated") // a lost reply's token rotated again
	countRefreshRefused     = refreshesTotal.WithLabelValues("refused")
	countRefreshUnavailable = refreshesTotal.WithLabelValues("store_unavailable")
	countSessionStarted     = refreshesTotal.WithLabelValues("session_started")
	countSignout            = refreshesTotal.WithLabelValues("signed_out")
)

// registerMetrics adds the collectors to this config's registry.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{verdictsTotal, refreshesTotal, streamsClosedTotal} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}
