#!/usr/bin/env bash
# The invocation log (`logFile`, `logLevel`, `logMaxSize`) with the real binary on a simulated
# node: one whole line per invocation from many writers at once, a failed pod's line carrying
# its CNI error, a log that cannot be written never failing the verb, and the size cap.
source "$(dirname "$0")/lib/lib.sh"

setup_run
NODE=node
new_ns $NODE
LOGS=$RUN_DIR/log
mkdir -p "$LOGS"

# with_log CONFIG FILE [LEVEL [MAX_SIZE]]: CONFIG logging to FILE.
with_log() {
    jq -c --arg f "$2" --arg l "${3:-}" --arg m "${4:-}" \
        '.logFile = $f | if $l != "" then .logLevel = $l else . end | if $m != "" then .logMaxSize = ($m | tonumber) else . end' <<<"$1"
}
CONF=$(conf podnet 10.244.1.0/24)

# An info line: time, pid, verb, the pod, the network, the outcome, the duration; nothing else.
VALUE='([^ "\\=]+|"([^"\\]|\\.)*")'
INFO_RE="^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z pid=[0-9]+ (ADD|DEL|CHECK|GC|STATUS) container=$VALUE netns=$VALUE ifname=$VALUE network=$VALUE (ok( ips=$VALUE)?|error code=[0-9]+ msg=$VALUE( details=$VALUE)?) duration=[0-9]+\.[0-9]{3}ms"
DEBUG_RE="$INFO_RE stdin=$VALUE stdout=$VALUE\$"
INFO_RE="$INFO_RE\$"

# whole_lines RE FILE...: every line of the files matches RE, and each file ends with a newline.
whole_lines() {
    local re=$1 f; shift
    for f in "$@"; do
        [ -s "$f" ] || continue
        [ -z "$(tail -c 1 "$f")" ] || { echo "    $f does not end with a newline"; return 1; }
        if grep -Evq -- "$re" "$f"; then echo "    not a whole line in $f: $(grep -Ev -- "$re" "$f" | head -1)"; return 1; fi
    done
}

echo "== one line per invocation"
L=$LOGS/plugin.log
C=$(with_log "$CONF" "$L")
new_ns pod1
result=$(cni $NODE ADD ctr1 /run/netns/$RUN-pod1 eth0 "$C")
ip=$(jq -r '.ips[0].address' <<<"$result")
check "ADD succeeds with logging on ($ip)" test -n "$ip"
check "ADD logs one line with the pod and its address" \
    grep -q " ADD container=ctr1 netns=/run/netns/$RUN-pod1 ifname=eth0 network=podnet ok ips=$ip duration=" "$L"
cni $NODE CHECK ctr1 /run/netns/$RUN-pod1 eth0 "$(jq -c --argjson p "$result" '. + {prevResult: $p}' <<<"$C")" >/dev/null
cni $NODE DEL ctr1 /run/netns/$RUN-pod1 eth0 "$C" >/dev/null
check "CHECK and DEL log one line each" test "$(cut -d' ' -f3 "$L" | tr '\n' ' ')" = "ADD CHECK DEL "
check "every line is whole and in the documented form" whole_lines "$INFO_RE" "$L"
check "the file is created mode 0640" test "$(stat -c %a "$L")" = 640

echo "== a failed pod"
# A range of one address: the second pod finds it taken.
TINY=$(jq -c '.name = "tiny" | .bridge = "cni1" | .ipam.subnet = "10.244.2.0/24" | .ipam.rangeStart = "10.244.2.10" | .ipam.rangeEnd = "10.244.2.10"' <<<"$C")
new_ns pod2
new_ns pod3
cni $NODE ADD ctr2 /run/netns/$RUN-pod2 eth0 "$TINY" >/dev/null
out=$(cni $NODE ADD ctr3 /run/netns/$RUN-pod3 eth0 "$TINY")
line=$(grep " container=ctr3 " "$L")
echo "    $line"
check "the failed pod's line has the CNI error code and message it answered" \
    grep -qF "ADD container=ctr3 netns=/run/netns/$RUN-pod3 ifname=eth0 network=tiny error code=$(jq -r .code <<<"$out") msg=\"$(jq -r .msg <<<"$out")\"" <<<"$line"
cni $NODE DEL ctr2 /run/netns/$RUN-pod2 eth0 "$TINY" >/dev/null
cni $NODE DEL ctr3 /run/netns/$RUN-pod3 eth0 "$TINY" >/dev/null
L=$LOGS/bad-config.log
out=$(cni $NODE ADD ctr4 /run/netns/$RUN-pod3 eth0 "$(with_log "$(conf podnet 10.244.1.0/33)" "$L")")
check "a config error is logged too (code 7)" grep -q " ADD container=ctr4 .* error code=7 msg=\"invalid network configuration: ipam.subnet" "$L"

echo "== level error: failures only"
L=$LOGS/errors.log
E=$(with_log "$CONF" "$L" error)
cni $NODE ADD ctr5 /run/netns/$RUN-pod3 eth0 "$E" >/dev/null
cni $NODE ADD ctr6 /run/netns/$RUN-pod3 eth0 "$E" >/dev/null     # eth0 exists: code 101
cni $NODE DEL ctr5 /run/netns/$RUN-pod3 eth0 "$E" >/dev/null
check "only the failed ADD is logged" test "$(grep -c . "$L") $(grep -c ' ADD container=ctr6 .* error code=101 ' "$L")" = "1 1"

echo "== 80 invocations, 40 at a time, appending to one file"
L=$LOGS/busy.log
B=$(with_log "$CONF" "$L")
for i in $(seq 1 20); do new_ns a$i; new_ns b$i; done
for i in $(seq 1 20); do cni $NODE ADD a$i /run/netns/$RUN-a$i eth0 "$B" >/dev/null & done; wait
for i in $(seq 1 20); do
    cni $NODE DEL a$i /run/netns/$RUN-a$i eth0 "$B" >/dev/null &
    cni $NODE ADD b$i /run/netns/$RUN-b$i eth0 "$B" >/dev/null &
done; wait
for i in $(seq 1 20); do cni $NODE DEL b$i /run/netns/$RUN-b$i eth0 "$B" >/dev/null & done; wait
check "80 lines" test "$(wc -l <"$L")" = 80
check "every line whole" whole_lines "$INFO_RE" "$L"
check "one line per invocation (verb, container)" test "$(awk '{print $3, $4}' "$L" | sort -u | wc -l)" = 80
check "every invocation succeeded" test "$(grep -c ' ok ' "$L")" = 80
check "no lease left behind" test -z "$(ls "$DATA_DIR/podnet" | grep -v -e '^lock$' -e '^last_reserved_ip')"

echo "== the cap: rotation at logMaxSize"
L=$LOGS/capped.log
K=$(with_log "$CONF" "$L" debug 4096)
for i in $(seq 1 12); do
    cni $NODE ADD k$i /run/netns/$RUN-a1 eth0 "$K" >/dev/null
    cni $NODE DEL k$i /run/netns/$RUN-a1 eth0 "$K" >/dev/null
done
check "the log was rotated to .1" test -s "$L.1"
check "neither file is over logMaxSize ($(stat -c %s "$L") and $(stat -c %s "$L.1") bytes)" \
    test "$(stat -c %s "$L")" -le 4096 -a "$(stat -c %s "$L.1")" -le 4096
check "no third file" test "$(ls "$LOGS" | grep -c '^capped')" = 2
check "every debug line whole, with stdin and stdout" whole_lines "$DEBUG_RE" "$L" "$L.1"
check "the newest line is the last invocation" grep -q ' DEL container=k12 ' <(tail -1 "$L")
L=$LOGS/racing.log
R=$(with_log "$CONF" "$L" info 2048)
for i in $(seq 1 20); do cni $NODE ADD r$i /run/netns/$RUN-b$i eth0 "$R" >/dev/null & done; wait
for i in $(seq 1 20); do cni $NODE DEL r$i /run/netns/$RUN-b$i eth0 "$R" >/dev/null & done; wait
lines=$(cat "$L" "$L.1" | wc -l)
check "40 writers rotating a 2 KiB log at once: lines whole, none torn ($lines of 40 kept)" whole_lines "$INFO_RE" "$L" "$L.1"
check "...and the files stay near the cap" test "$(stat -c %s "$L")" -le $((2048 + 40 * 300)) -a "$(stat -c %s "$L.1")" -le $((2048 + 40 * 300))

echo "== a log that cannot be written never fails the verb"
touch "$LOGS/a-file"
mkdir "$LOGS/a-dir"
echo "not a log" >"$LOGS/target"
ln -s "$LOGS/target" "$LOGS/a-symlink"
mkfifo "$LOGS/a-fifo"
for path in "$LOGS/a-dir" "$LOGS/a-file/plugin.log" /proc/sys/bridge-ipam.log "$LOGS/a-symlink" "$LOGS/a-fifo" "$LOGS/no/such/plugin.log"; do
    U=$(with_log "$CONF" "$path")
    out=$(cni $NODE ADD u1 /run/netns/$RUN-pod1 eth0 "$U"); rc=$?
    check "logFile $path: ADD succeeds" test "$rc $(jq -r '.ips[0].address | test("^10\\.244\\.1\\.")' <<<"$out")" = "0 true"
    check "logFile $path: DEL succeeds" cni $NODE DEL u1 /run/netns/$RUN-pod1 eth0 "$U"
done
check "nothing was written through the symlink" test "$(cat "$LOGS/target")" = "not a log"
check "no directory was made but the last level" test ! -e "$LOGS/no"

finish
