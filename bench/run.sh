#!/usr/bin/env bash
# bench/run.sh - what the gate costs: the same Caddy binary serving the same
# terminal handler (respond "ok") with and without session_gate in front,
# loaded by wrk on loopback, runs alternating between the two (B,G then G,B)
# so that drift cancels out.
#
# USAGE   bench/run.sh [CASE...]     (make bench runs them all)
# CASES   hs256 rs256 es256 eddsa    a valid token of that algorithm, sent again and again
#                                    (the verified-token cache's case: a browser keeps its token)
#         interstitial               an expired HS256 token on a navigation: the 401 refresh page
#         expiredapi                 the same expired token on an API call: 401 {"message":"try refresh token"}
#         nocache                    HS256 with token_cache off: a full verification per request
#         rs256cold                  RS256 with token_cache off
#         keycloak keycloakcold      an RS256 token with the 20-odd claims of a Keycloak access token
#                                    (realm and client roles, scope, profile), cached and with token_cache off
#         refresher                  HS256 with an internal refresher (memory store): the token
#                                    carries a "sid", so the revoked-session set is consulted too
#         Each case runs its own gated Caddy: bench/baseline.Caddyfile with session_gate
#         first in the route.
#         The interstitial is also compared with an ungated page of the same size.
# ENV     ROUNDS (3)  DUR (10s)  WARM (2s)  CONNS (64)  THREADS (2)
#
# OUTPUT  per round: rps and Caddy CPU microseconds per request of both sides;
#         per case:  "<case> cpu_ratio C rps_ratio R" where cpu_ratio is
#         baseline/gated CPU per request (1.00 = free), the median over rounds.
#         Caddy's CPU comes from /proc/PID/stat (utime+stime); on a 2-core box it
#         is much steadier than requests/s, which swings +-15 % between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3} DUR=${DUR:-10s} WARM=${WARM:-2s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(hs256 rs256 es256 eddsa interstitial expiredapi nocache rs256cold keycloak keycloakcold refresher)
for tool in wrk curl go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is needed (scripts/test-deps.sh --bench)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/session-gate-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/caddy" ./cmd/caddy
mkdir "$WORK/keys"
go run ./bench/mint -dir "$WORK/keys"
export BENCH_KEYS=$WORK/keys

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME CADDYFILE -> prints "PID PORT"
start() {
	local port
	port=$(free_port)
	BENCH_PORT=$port "$WORK/caddy" run --config "$2" --adapter caddyfile >"$WORK/$1.log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 100); do
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && { echo "$pid $port"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$WORK/$1.log" >&2
	echo "bench: $1 did not start" >&2
	return 1
}

# gated_caddyfile CASE -> a Caddyfile like bench/baseline.Caddyfile with the
# gate first in the route, configured for CASE
gated_caddyfile() {
	local gate
	case $1 in
	hs256 | interstitial | expiredapi) gate="secret {file.$BENCH_KEYS/secret.txt}" ;;
	rs256 | es256 | eddsa) gate="public_key $BENCH_KEYS/$1.pem" ;;
	keycloak) gate="public_key $BENCH_KEYS/rs256.pem" ;;
	nocache) gate="secret {file.$BENCH_KEYS/secret.txt}\n\t\t\ttoken_cache off" ;;
	rs256cold | keycloakcold) gate="public_key $BENCH_KEYS/rs256.pem\n\t\t\ttoken_cache off" ;;
	refresher) gate="secret {file.$BENCH_KEYS/secret.txt}\n\t\t\trefresher {\n\t\t\t\tstore memory\n\t\t\t}" ;;
	esac
	sed "s|^\t\trespond \"ok\" 200|\t\tsession_gate {\n\t\t\t$gate\n\t\t}\n&|" bench/baseline.Caddyfile >"$WORK/gated-$1.Caddyfile"
	echo "$WORK/gated-$1.Caddyfile"
}

# page_caddyfile BYTES -> the baseline answering a body as large as the interstitial
page_caddyfile() {
	local body
	body=$(head -c "$1" /dev/zero | tr '\0' 'x')
	sed "s|respond \"ok\" 200|respond \"$body\" 200|" bench/baseline.Caddyfile >"$WORK/page.Caddyfile"
	echo "$WORK/page.Caddyfile"
}

read -r PID_B PORT_B < <(start baseline bench/baseline.Caddyfile)
PIDS+=("$PID_B")

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# load URL DURATION PID HEADERS... -> "rps cpu_us_per_req"
load() {
	local url=$1 dur=$2 pid=$3 c0 c1 out
	shift 3
	c0=$(cpu_ticks "$pid")
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$dur" "$@" "$url" 2>&1)
	c1=$(cpu_ticks "$pid")
	if grep -q 'Socket errors' <<<"$out"; then echo "warn: $url: $(grep 'Socket errors' <<<"$out")" >&2; fi
	awk -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" '
		/ requests in / {n=$1} /^Requests\/sec:/ {r=$2}
		END { printf "%s %.2f\n", r, (n > 0 ? (c1-c0)/hz*1e6/n : 0) }' <<<"$out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }

# case settings: path, token file, extra headers, expected gated status
case_args() {
	case $1 in
	hs256) echo "/hs256/ hs256.jwt 200" ;;
	rs256 | es256 | eddsa) echo "/$1/ $1.jwt 200" ;;
	nocache) echo "/nocache/ hs256.jwt 200" ;;
	rs256cold) echo "/rs256cold/ rs256.jwt 200" ;;
	keycloak | keycloakcold) echo "/$1/ keycloak.jwt 200" ;;
	expiredapi) echo "/api expired.jwt 401" ;;
	refresher) echo "/refresher/ hs256.jwt 200" ;;
	interstitial) echo "/page expired.jwt 401" ;;
	*) echo "bench: unknown case $1" >&2; return 1 ;;
	esac
}

echo "# $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(go version | cut -d' ' -f3)"
echo "# wrk -t$THREADS -c$CONNS -d$DUR, $ROUNDS rounds, caddy $("$WORK/caddy" version | cut -d' ' -f1)"
SUMMARY=()
for c in "${CASES[@]}"; do
	read -r path tokfile want < <(case_args "$c")
	read -r PID_G PORT_G < <(start "gated-$c" "$(gated_caddyfile "$c")")
	PIDS+=("$PID_G")
	hdr=(-H "Cookie: sAccessToken=$(cat "$BENCH_KEYS/$tokfile")")
	if [ "$c" = interstitial ]; then
		hdr+=(-H "Accept: text/html" -H "Accept-Encoding: gzip, deflate, br" -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Dest: document")
	fi
	if [ "$c" = expiredapi ]; then
		hdr+=(-H "Accept: application/json" -H "Sec-Fetch-Mode: cors")
	fi
	read -r got wire < <(curl -s --compressed -o "$WORK/body" -w '%{http_code} %{size_download}\n' "${hdr[@]}" "http://127.0.0.1:$PORT_G$path")
	[ "$got" = "$want" ] || { echo "bench: $c: gated answered $got, want $want" >&2; exit 1; }
	if [ "$c" = interstitial ]; then grep -q 'Restoring your session' "$WORK/body" || { echo "bench: no interstitial" >&2; exit 1; }; fi
	if [ "$c" = expiredapi ]; then grep -q 'try refresh token' "$WORK/body" || { echo "bench: expiredapi: not the expired answer" >&2; exit 1; }; fi
	got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_G$path")
	[ "${got:0:1}" != 2 ] || { echo "bench: $c: the gate let a request without a token through" >&2; exit 1; }

	load "http://127.0.0.1:$PORT_B$path" "$WARM" "$PID_B" "${hdr[@]}" >/dev/null
	load "http://127.0.0.1:$PORT_G$path" "$WARM" "$PID_G" "${hdr[@]}" >/dev/null
	RC=() RR=()
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			read -r b cb < <(load "http://127.0.0.1:$PORT_B$path" "$DUR" "$PID_B" "${hdr[@]}")
			read -r g cg < <(load "http://127.0.0.1:$PORT_G$path" "$DUR" "$PID_G" "${hdr[@]}")
		else
			read -r g cg < <(load "http://127.0.0.1:$PORT_G$path" "$DUR" "$PID_G" "${hdr[@]}")
			read -r b cb < <(load "http://127.0.0.1:$PORT_B$path" "$DUR" "$PID_B" "${hdr[@]}")
		fi
		cr=$(awk -v b="$cb" -v g="$cg" 'BEGIN { printf "%.3f", (g > 0 ? b/g : 0) }')
		rr=$(awk -v b="$b" -v g="$g" 'BEGIN { printf "%.3f", (b > 0 ? g/b : 0) }')
		echo "$c round $r baseline rps $b cpu_us/req $cb | gated rps $g cpu_us/req $cg | cpu_ratio $cr rps_ratio $rr"
		RC+=("$cr") RR+=("$rr")
	done
	SUMMARY+=("$(printf '%-13s cpu_ratio %.2f rps_ratio %.2f  (gated %s µs/req)' "$c" "$(median "${RC[@]}")" "$(median "${RR[@]}")" "$cg")")
	if [ "$c" = interstitial ] && [ "${PAGE_BASELINE:-1}" = 1 ]; then
		# The page alone costs Caddy more than "ok" does: compare with an
		# ungated answer of the same size to see the gate's own share.
		read -r PID_P PORT_P < <(start page "$(page_caddyfile "$wire")")
		PIDS+=("$PID_P")
		load "http://127.0.0.1:$PORT_P$path" "$WARM" "$PID_P" "${hdr[@]}" >/dev/null
		RC=()
		for r in $(seq 1 "$ROUNDS"); do
			read -r b cb < <(load "http://127.0.0.1:$PORT_P$path" "$DUR" "$PID_P" "${hdr[@]}")
			read -r g cg < <(load "http://127.0.0.1:$PORT_G$path" "$DUR" "$PID_G" "${hdr[@]}")
			cr=$(awk -v b="$cb" -v g="$cg" 'BEGIN { printf "%.3f", (g > 0 ? b/g : 0) }')
			echo "$c vs same-size page round $r page cpu_us/req $cb | gated cpu_us/req $cg | cpu_ratio $cr"
			RC+=("$cr")
		done
		SUMMARY+=("$(printf '%-13s cpu_ratio %.2f  against an ungated answer of the same %s bytes' "$c" "$(median "${RC[@]}")" "$wire")")
		kill "$PID_P"
	fi
	kill "$PID_G"
done
echo
printf '%s\n' "${SUMMARY[@]}"
