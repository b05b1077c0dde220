package sessiongate

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/session-gate/session_gate/refresh"
	"github.com/session-gate/session_gate/session"
)

// The `caddy session-gate` command (docs/behaviour.md, "Command line"):
// tokens for curl and tests, why a token is refused, and the sessions of the
// running Caddy.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "session-gate",
		Usage: "token|inspect|sessions",
		Short: "Mints and inspects session_gate tokens, lists and revokes sessions",
		Long: `
Tools for operating session_gate.

  token     prints an access token that a gate of your config accepts, for
            curl and tests
  inspect   prints a token's header and claims, and the verdict a gate of
            your config gives it, with the reason
  sessions  lists or revokes a user's sessions in the running Caddy, through
            its admin API (needs a gate with a refresher)

token and inspect read the config file (like caddy adapt) and never contact
a running Caddy; sessions talks only to the running Caddy.

Run "caddy session-gate <command> --help" for each command's flags.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(tokenCommand(), inspectCommand(), sessionsCommand())
			needsSubcommand(cmd)
		},
	})
}

// runE adapts a subcommand to cobra. Its error is one plain line on stderr
// and exit status 1: caddycmd.WrapCommandFuncForCobra would log it as a
// JSON line, escaping once more the JSON an error may quote.
func runE(f func(caddycmd.Flags) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		err := f(caddycmd.Flags{FlagSet: cmd.Flags()})
		if err != nil {
			cmd.SilenceErrors = true
			fmt.Fprintln(cmd.ErrOrStderr(), "Error: "+oneLine(err.Error()))
		}
		return err
	}
}

// oneLine folds a message's line breaks (and the indentation after them)
// into single spaces.
func oneLine(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " ")
}

// needsSubcommand makes a command that only groups others fail on a
// missing or unknown subcommand, with the usage on stderr; cobra alone
// prints the help on stdout and exits 0, so a typo looks like success.
func needsSubcommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cmd.SilenceErrors = true
		err := fmt.Errorf("%s needs a subcommand", cmd.CommandPath())
		if len(args) > 0 {
			err = fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Error: "+err.Error())
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Usage()
		return err
	}
}

func tokenCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "token --config <path> [--adapter <name>] [--site <host>] --sub <user> [--claim <name>=<value>]... [--ttl <duration>]",
		Short: "Prints an access token signed with a gate's key",
		Long: `
Prints an access token that the session_gate of the given config accepts,
signed with that gate's key: its secret, or its refresher's secret or
private key. It carries "sub", "iat", "exp" and the "iss" and "aud" the
gate requires. Use it with curl:

  $ curl -H "Authorization: Bearer $(caddy session-gate token -c Caddyfile --sub alice)" https://example.com/

--config names the config file (a Caddyfile or JSON, as for caddy adapt);
placeholders such as {env.SESSION_SECRET} expand in this command's
environment.

--site picks the gate of the site with that host when the config has
several gates.

--sub is the user (the "sub" claim). Required.

--claim adds a claim; repeat it for more. A value that is JSON (42, true,
["a","b"], {"k":1}) is taken as JSON, anything else as text; quote a JSON
string to keep a number as text: --claim 'zip="01234"'.

--ttl is the token's lifetime (default 5m). A negative one mints an
already expired token, to see the interstitial.

A gate that has only public keys (public_key, jwks, oidc_issuer) is refused: tokens for
it are signed by your identity provider, and only it has the private key.
`,
		Args: cobra.NoArgs,
		RunE: runE(cmdToken),
	}
	configFlags(c)
	c.Flags().String("sub", "", "The user, the token's \"sub\" claim (required)")
	c.Flags().StringArray("claim", nil, "A claim as <name>=<value>; repeatable")
	c.Flags().String("ttl", "5m", "Lifetime of the token")
	return c
}

func inspectCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "inspect --config <path> [--adapter <name>] [--site <host>] <token>|-",
		Short: "Shows a token's claims and the verdict a gate gives it",
		Long: `
Decodes a token and prints its header and claims, then the verdict the
session_gate of the given config gives it (valid, expired or invalid) and
why: a bad signature, an unknown key, a wrong audience and so on. The
verdict comes from the gate's own verifier with the gate's keys (a jwks URL
is fetched).

The token is the argument, or - to read it from stdin (so it stays out of
your shell history):

  $ pbpaste | caddy session-gate inspect -c Caddyfile -

The exit status is 0 only when the token is valid; 1 otherwise, and when
the config or the token cannot be read.

inspect does not ask the session store: a token of a revoked session that
has not expired shows as valid here, while the running gate refuses it.
"caddy session-gate sessions list" shows the live sessions.
`,
		Args: cobra.ExactArgs(1),
		RunE: runE(cmdInspect),
	}
	configFlags(c)
	return c
}

func sessionsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "sessions list|revoke",
		Short: "Lists or revokes sessions in the running Caddy",
		Long: `
Lists or revokes the sessions of the running Caddy's session_gate
refreshers, through the admin API (module admin.api.session_gate). A
revoked session cannot refresh, and its access tokens are refused within a
second by every Caddy sharing the store, although they have not expired.

Since the admin endpoint is configurable, its address is taken from the
--address flag if given; otherwise from the config file given with
--config; otherwise the default (localhost:2019) is assumed, as for caddy
reload.
`,
	}
	list := &cobra.Command{
		Use:   "list --sub <user> [--json] [--address <interface>] [--config <path> [--adapter <name>]]",
		Short: "Lists a user's live sessions",
		Long: `
Lists the live sessions of a user: session id, the device it was started
on (the browser and system its User-Agent named), when it started, when it
was last refreshed (its start, before the first refresh), and when it ends
unless refreshed again. --json prints the admin API's answer as it is.
`,
		Args: cobra.NoArgs,
		RunE: runE(cmdSessionsList),
	}
	list.Flags().String("sub", "", "The user whose sessions to list (required)")
	list.Flags().Bool("json", false, "Print JSON instead of a table")
	adminFlags(list)
	revoke := &cobra.Command{
		Use:   "revoke (--sub <user> | --sid <session-id>) [--address <interface>] [--config <path> [--adapter <name>]]",
		Short: "Revokes one session, or all of a user's sessions",
		Long: `
Revokes one session (--sid, as "sessions list" shows it) or every session
of a user (--sub: signs the user out of every device). The person is sent
to login on the next request.
`,
		Args: cobra.NoArgs,
		RunE: runE(cmdSessionsRevoke),
	}
	revoke.Flags().String("sub", "", "Revoke every session of this user")
	revoke.Flags().String("sid", "", "Revoke this session")
	adminFlags(revoke)
	c.AddCommand(list, revoke)
	needsSubcommand(c)
	return c
}

func configFlags(c *cobra.Command) {
	c.Flags().StringP("config", "c", "", "Configuration file (required)")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	c.Flags().String("site", "", "Host of the site whose gate to use, when there are several")
}

func adminFlags(c *cobra.Command) {
	c.Flags().String("address", "", "Address of the administration listener, if different from config")
	c.Flags().StringP("config", "c", "", "Configuration file, to find the admin address")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
}

// ---------------------------------------------------------------------------
// token

func cmdToken(fl caddycmd.Flags) error {
	sub := fl.String("sub")
	if sub == "" {
		return errors.New("--sub is required: name the user the token is for")
	}
	ttl, err := caddy.ParseDuration(fl.String("ttl"))
	if err != nil {
		return fmt.Errorf("--ttl %q is not a duration (like 5m or 1h)", fl.String("ttl"))
	}
	extra, err := fl.GetStringArray("claim")
	if err != nil {
		return err
	}
	claims, err := parseClaimFlags(extra)
	if err != nil {
		return err
	}
	g, err := gateFromFlags(fl)
	if err != nil {
		return err
	}
	signer, err := g.tokenSigner()
	if err != nil {
		return err
	}
	now := time.Now()
	claims["sub"] = sub
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	if iss := g.requiredIssuer(); iss != "" {
		claims["iss"] = iss
	}
	switch len(g.Audience) {
	case 0:
	case 1:
		claims["aud"] = g.Audience[0]
	default:
		claims["aud"] = g.Audience
	}
	tok, err := signer.Sign(claims)
	if err != nil {
		return fmt.Errorf("signing the token: %w", err)
	}
	fmt.Println(tok)
	return nil
}

// parseClaimFlags reads --claim name=value flags. Values that are JSON are
// taken as JSON; sub, iat and exp come from their own flags.
func parseClaimFlags(flags []string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--claim %q: write it as <name>=<value>, e.g. --claim role=admin", f)
		}
		switch name {
		case "sub":
			return nil, errors.New("--claim sub: use --sub to name the user")
		case "iat", "exp":
			return nil, fmt.Errorf("--claim %s: set by the command; use --ttl for the lifetime", name)
		}
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			v = value
		}
		claims[name] = v
	}
	return claims, nil
}

// tokenSigner is the key the gate's tokens are signed with: the refresher's
// (its private key or secret, else the gate's first secret), or without a
// refresher the gate's first secret.
func (g *Gate) tokenSigner() (*refresh.Signer, error) {
	keys, err := g.verifierConfig()
	if err != nil {
		return nil, err
	}
	if g.Refresher != nil {
		s, _, err := g.Refresher.newSigner(keys)
		if err != nil {
			return nil, fmt.Errorf("session_gate: refresher: %w", err)
		}
		return s, nil
	}
	if len(keys.Secrets) == 0 {
		return nil, errors.New("this gate has only public keys (public_key, jwks, oidc_issuer): its tokens are signed by your " +
			"identity provider, which alone has the private key. Get a token from it, or give the gate a secret " +
			"or a refresher with a private_key")
	}
	return refresh.NewHMACSigner(keys.Secrets[0])
}

// ---------------------------------------------------------------------------
// inspect

func cmdInspect(fl caddycmd.Flags) error {
	tok, err := readTokenArg(fl.Arg(0))
	if err != nil {
		return err
	}
	g, err := gateFromFlags(fl)
	if err != nil {
		return err
	}
	keys, err := g.verifierConfig()
	if err != nil {
		return err
	}
	if g.Refresher != nil {
		if _, keys, err = g.Refresher.newSigner(keys); err != nil {
			return fmt.Errorf("session_gate: refresher: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := session.NewVerifier(ctx, keys)
	if err != nil {
		return fmt.Errorf("session_gate: %w", err)
	}
	printTokenParts(os.Stdout, tok)
	res := v.Verify(tok)
	printVerdict(os.Stdout, res)
	if res.Verdict != session.Valid {
		return fmt.Errorf("token %s is not valid: %s (%s)", fingerprint(tok), res.Verdict, res.Reason)
	}
	return nil
}

// readTokenArg is the token argument, or the first line of stdin for "-".
func readTokenArg(arg string) (string, error) {
	tok := arg
	if arg == "-" {
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 64<<10)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("reading the token from stdin: %w", err)
		}
		tok = line
	}
	tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Bearer "))
	if tok == "" {
		return "", errors.New("no token: give it as the argument, or - and the token on stdin")
	}
	return tok, nil
}

// printTokenParts prints the decoded header and claims, without verifying
// anything: what the token says, so that the verdict can be understood.
func printTokenParts(w io.Writer, tok string) {
	parts := strings.Split(tok, ".")
	for i, name := range []string{"header", "claims"} {
		if i >= len(parts) {
			fmt.Fprintf(w, "%s: missing (a JWT has three parts separated by dots)\n", name)
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", name, decodePart(parts[i]))
	}
}

// decodePart shows one base64url JSON part indented, with the times of
// exp, nbf and iat spelled out.
func decodePart(part string) string {
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return "not base64url"
	}
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return "not a JSON object"
	}
	out, _ := json.MarshalIndent(obj, "", "  ")
	s := string(out)
	for _, c := range []string{"exp", "nbf", "iat"} {
		if n, ok := obj[c].(json.Number); ok {
			if secs, err := n.Int64(); err == nil {
				s += fmt.Sprintf("\n  %s = %s", c, time.Unix(secs, 0).UTC().Format(time.RFC3339))
			}
		}
	}
	return s
}

func printVerdict(w io.Writer, res session.Result) {
	fmt.Fprintf(w, "verdict: %s\n", res.Verdict)
	reason := res.Reason
	if res.Verdict == session.Valid {
		reason = "signature, algorithm and claims check"
		if !res.ExpiresAt.IsZero() {
			reason += fmt.Sprintf("; expires in %s", time.Until(res.ExpiresAt).Round(time.Second))
		}
	}
	fmt.Fprintf(w, "reason: %s\n", reason)
}

// ---------------------------------------------------------------------------
// finding a gate in a config

// gateInConfig is one session_gate handler of a config and the hosts of
// the routes it sits in (none: every host).
type gateInConfig struct {
	hosts []string
	raw   json.RawMessage
}

// gateFromFlags loads --config (with --adapter) and returns the gate that
// --site names, or the only one.
func gateFromFlags(fl caddycmd.Flags) (*Gate, error) {
	configFile := fl.String("config")
	if configFile == "" {
		return nil, errors.New("--config is required: the config file whose gate to use (a Caddyfile or JSON)")
	}
	cfg, err := loadConfig(configFile, fl.String("adapter"))
	if err != nil {
		return nil, err
	}
	gates, err := findGates(cfg)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", configFile, err)
	}
	found, err := pickGate(gates, fl.String("site"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	g := new(Gate)
	if err := json.Unmarshal(found.raw, g); err != nil {
		return nil, fmt.Errorf("%s: session_gate: %w", configFile, err)
	}
	g.setDefaults()
	return g, nil
}

// loadConfig reads and adapts a config file as caddycmd.LoadConfig does,
// but quietly: that one logs each step at info level and the adapter's
// warnings, and these commands print only their answer (a token for a
// shell's $(…)). A Caddyfile's errors name its file and line.
func loadConfig(file, adapter string) ([]byte, error) {
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	if adapter == "" && looksLikeCaddyfile(file) {
		adapter = "caddyfile"
	}
	if adapter == "" {
		if !json.Valid(body) {
			return nil, fmt.Errorf("%s is not JSON; name its format with --adapter (e.g. --adapter caddyfile)", file)
		}
		return body, nil
	}
	a := caddyconfig.GetAdapter(adapter)
	if a == nil {
		return nil, fmt.Errorf("unknown config adapter %q", adapter)
	}
	cfg, _, err := a.Adapt(body, map[string]any{"filename": file})
	if err != nil {
		return nil, fmt.Errorf("adapting the config: %w", err)
	}
	return cfg, nil
}

// looksLikeCaddyfile is Caddy's rule for a config given without
// --adapter: a name that starts with "Caddyfile" or ends in ".caddyfile"
// (any case), unless it ends in ".json".
func looksLikeCaddyfile(file string) bool {
	base := strings.ToLower(filepath.Base(file))
	return filepath.Ext(base) != ".json" && (strings.HasPrefix(base, "caddyfile") || strings.HasSuffix(base, ".caddyfile"))
}

// findGates walks the HTTP servers' routes (subroutes included) for
// session_gate handlers.
func findGates(cfg []byte) ([]gateInConfig, error) {
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []jsonRoute `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, err
	}
	var gates []gateInConfig
	for _, name := range slices.Sorted(maps.Keys(doc.Apps.HTTP.Servers)) {
		walkRoutes(doc.Apps.HTTP.Servers[name].Routes, nil, &gates)
	}
	return gates, nil
}

type jsonRoute struct {
	Match []struct {
		Host []string `json:"host"`
	} `json:"match"`
	Handle []json.RawMessage `json:"handle"`
}

func walkRoutes(routes []jsonRoute, hosts []string, gates *[]gateInConfig) {
	for _, r := range routes {
		h := hosts
		for _, m := range r.Match {
			if len(m.Host) > 0 {
				h = m.Host
			}
		}
		for _, raw := range r.Handle {
			var head struct {
				Handler string      `json:"handler"`
				Routes  []jsonRoute `json:"routes"`
			}
			if json.Unmarshal(raw, &head) != nil {
				continue
			}
			switch head.Handler {
			case "session_gate":
				*gates = append(*gates, gateInConfig{hosts: h, raw: raw})
			case "subroute":
				walkRoutes(head.Routes, h, gates)
			}
		}
	}
}

// pickGate chooses the gate of site ("" when the config has one gate).
// Copies of one gate (a site answering several hosts) count once.
func pickGate(gates []gateInConfig, site string) (gateInConfig, error) {
	var matched []gateInConfig
	for _, g := range gates {
		if site == "" || slices.ContainsFunc(g.hosts, func(h string) bool { return strings.EqualFold(h, site) }) {
			if !slices.ContainsFunc(matched, func(m gateInConfig) bool { return string(m.raw) == string(g.raw) }) {
				matched = append(matched, g)
			}
		}
	}
	switch {
	case len(gates) == 0:
		return gateInConfig{}, errors.New("no session_gate handler in this config")
	case len(matched) == 1:
		return matched[0], nil
	case len(matched) == 0:
		return gateInConfig{}, fmt.Errorf("no session_gate on a site with host %q; sites with a gate: %s", site, siteList(gates))
	case site == "":
		return gateInConfig{}, fmt.Errorf("%d session_gate handlers; choose one with --site <host> (sites with a gate: %s)", len(matched), siteList(gates))
	default:
		return gateInConfig{}, fmt.Errorf("%d different session_gate handlers on %q; this command can only tell sites apart", len(matched), site)
	}
}

func siteList(gates []gateInConfig) string {
	var names []string
	for _, g := range gates {
		if len(g.hosts) == 0 {
			names = append(names, "(any host)")
		}
		names = append(names, g.hosts...)
	}
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(names))), ", ")
}

// ---------------------------------------------------------------------------
// sessions

func cmdSessionsList(fl caddycmd.Flags) error {
	sub := fl.String("sub")
	if sub == "" {
		return errors.New("--sub is required: name the user whose sessions to list")
	}
	body, err := adminCall(fl, http.MethodGet, adminSessionsPath+"?sub="+url.QueryEscape(sub))
	if err != nil {
		return fmt.Errorf("listing the sessions of %q: %w", sub, err)
	}
	if fl.Bool("json") {
		fmt.Print(string(body))
		return nil
	}
	var list []sessionJSON
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("the admin API's answer is not a session list: %w", err)
	}
	if len(list) == 0 {
		fmt.Printf("%s has no live sessions\n", sub)
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SID\tSUB\tDEVICE\tCREATED\tLAST SEEN\tEXPIRES")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.SID, s.Sub, cmp.Or(s.Device, unknownDevice),
			s.Created.Format(time.RFC3339), s.LastSeen.Format(time.RFC3339), s.Expires.Format(time.RFC3339))
	}
	return tw.Flush()
}

func cmdSessionsRevoke(fl caddycmd.Flags) error {
	sub, sid := fl.String("sub"), fl.String("sid")
	switch {
	case (sub == "") == (sid == ""):
		return errors.New("give exactly one of --sid <session-id> (one session) or --sub <user> (all of the user's sessions)")
	case sid != "":
		if _, err := adminCall(fl, http.MethodDelete, adminSessionsPath+"/"+url.PathEscape(sid)); err != nil {
			return fmt.Errorf("revoking session %s: %w", sid, err)
		}
		fmt.Printf("revoked session %s\n", sid)
	default:
		body, err := adminCall(fl, http.MethodDelete, adminSessionsPath+"?sub="+url.QueryEscape(sub))
		if err != nil {
			return fmt.Errorf("revoking the sessions of %q: %w", sub, err)
		}
		var n struct {
			Revoked int `json:"revoked"`
		}
		if err := json.Unmarshal(body, &n); err != nil {
			return fmt.Errorf("the admin API's answer is not a count: %w", err)
		}
		fmt.Printf("revoked %d session(s) of %s\n", n.Revoked, sub)
	}
	return nil
}

// adminCall sends one request to the running Caddy's admin API (found as
// caddy reload finds it) and returns the body of a 2xx answer. A failure
// is told in plain words: the API's own message, not its JSON.
func adminCall(fl caddycmd.Flags, method, uri string) ([]byte, error) {
	addr, err := adminAddress(fl)
	if err != nil {
		return nil, fmt.Errorf("finding the admin API: %w", err)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, nil)
	if err != nil {
		if strings.Contains(err.Error(), "performing request") {
			return nil, fmt.Errorf("%w: is Caddy running with its admin API at %s? Use --address, or --config with the running config, to name another", err, addr)
		}
		return nil, plainAdminError(err)
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// adminAddress is --address, else the admin address of --config, else
// Caddy's default; the config is read quietly (see loadConfig).
func adminAddress(fl caddycmd.Flags) (string, error) {
	file := fl.String("config")
	if fl.String("address") != "" || file == "" {
		return caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
	}
	cfg, err := loadConfig(file, fl.String("adapter"))
	if err != nil {
		return "", err
	}
	return caddycmd.DetermineAdminAPIAddress("", cfg, file, "")
}

// adminErrorText is how caddycmd.AdminAPIRequest reports an answer of 400
// or more; the body is the admin API's {"error":"…"}.
var adminErrorText = regexp.MustCompile(`(?s)^caddy responded with error: HTTP (\d+): (.*)$`)

// plainAdminError turns an error answer into "<message> (HTTP <status>)".
func plainAdminError(err error) error {
	m := adminErrorText.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(m[2]), &body) != nil || body.Error == "" {
		return err
	}
	return fmt.Errorf("%s (HTTP %s)", body.Error, m[1])
}
