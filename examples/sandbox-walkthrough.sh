#!/usr/bin/env bash
# The README's sandbox walkthrough, as one script: the sandboxes, `optibridge serve`, a
# template, the listeners, an audience, Optimove's notification, and a reconciled campaign.
# tests/cli/test_walkthrough.py runs it end to end, so the README cannot drift from the product.
#
#   bash examples/sandbox-walkthrough.sh          # in an empty folder; needs optibridge on PATH
#
# Ports and the folder can be changed: OPTIMOVE_PORT, PLATFORM_PORT, SERVICE_PORT.
set -euo pipefail
OPTIMOVE_PORT="${OPTIMOVE_PORT:-8701}"
PLATFORM_PORT="${PLATFORM_PORT:-8702}"
SERVICE_PORT="${SERVICE_PORT:-8080}"
OPTIMOVE="http://127.0.0.1:$OPTIMOVE_PORT"
PLATFORM="http://127.0.0.1:$PLATFORM_PORT"
SERVICE="http://127.0.0.1:$SERVICE_PORT"
started=()
trap 'for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done; wait' EXIT

wait_until() {  # wait_until SECONDS WHAT COMMAND...: retry COMMAND once a second
    local within=$1 what=$2
    shift 2
    for _ in $(seq "$within"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "walkthrough: $what did not happen within $within s" >&2
    return 1
}

# 1. Both sandboxes (in a terminal of their own; the platform calls back after 2 s).
optibridge sandbox --optimove-port "$OPTIMOVE_PORT" --platform-port "$PLATFORM_PORT" \
    --callback-window 2 > sandbox.log 2>&1 &
started+=($!)
wait_until 30 "the sandboxes answering" curl -sf "$OPTIMOVE/sandbox/" "$PLATFORM/sandbox/"

# 2. A configuration for them, and the secrets it names.
cat > optibridge.toml <<EOF
[server]
listen = "127.0.0.1:$SERVICE_PORT"
public_url = "$SERVICE"               # plain HTTP is fine on this machine only
database_url = "sqlite:///optibridge.db"
signing_secret_env = "OPTIBRIDGE_SIGNING_SECRET"

[tenants.demo]
optimove_url = "$OPTIMOVE"
api_key_env = "SANDBOX_OPTIMOVE_KEY"
callback_window_seconds = 2           # as the platform sandbox was started
report_interval_seconds = 2

[tenants.demo.channels.504]
type = "email"
address_attribute = "Email"
personalization = ["FirstName"]
personalization_defaults = { FirstName = "there" }

[tenants.demo.platform]
base_url = "$PLATFORM"
api_key_env = "SANDBOX_PLATFORM_KEY"
bounce_domain = 1

[timing]
callback_margin = 2                   # quiet seconds after the window before Dropped
EOF
export OPTIBRIDGE_SIGNING_SECRET="walkthrough-signing-secret-0123"
export SANDBOX_OPTIMOVE_KEY="sandbox-optimove-key"
export SANDBOX_PLATFORM_KEY="sandbox-platform-key"

# 3. The service (in a terminal of its own); it prints the URLs each side must reach.
optibridge serve > serve.log 2>&1 &
started+=($!)
wait_until 60 "optibridge serve answering" curl -sf "$SERVICE/readyz"
optibridge doctor

# 4. A template on the platform sandbox, then into Optimove's channel 504.
curl -sf -XPOST "$PLATFORM/sandbox/templates" -H 'content-type: application/json' \
    -d '{"name":"Welcome","type":"email","body":"<p>Hello {{FirstName}}</p>"}' | tee template.json
TEMPLATE_ID=$(python3 -c 'import json; print(json.load(open("template.json"))["id"])')
optibridge templates sync

# 5. The listeners: Optimove will call the service for campaigns on channel 504.
optibridge listeners register
optibridge listeners list

# 6. An audience for campaign 1001 on channel 504, using the template, due now.
NOW=$(date -u '+%Y-%m-%d %H:%M:%S')
curl -sf -XPOST "$OPTIMOVE/sandbox/demo/audiences/1001/504" -H 'content-type: application/json' -d "[
  {\"CustomerID\":\"C1\",\"TemplateID\":$TEMPLATE_ID,\"ScheduledTime\":\"$NOW\",\"Attributes\":{\"Email\":\"ada@example.com\",\"FirstName\":\"Ada\"}},
  {\"CustomerID\":\"C2\",\"TemplateID\":$TEMPLATE_ID,\"ScheduledTime\":\"$NOW\",\"Attributes\":{\"Email\":\"grace@example.com\",\"FirstName\":\"Grace\"}},
  {\"CustomerID\":\"C3\",\"TemplateID\":$TEMPLATE_ID,\"ScheduledTime\":\"$NOW\",\"Attributes\":{\"Email\":\"\"}}]"
echo

# 7. Optimove's notification: the service pulls the audience and executes it.
curl -sf -XPOST "$OPTIMOVE/sandbox/demo/notify" -H 'content-type: application/json' \
    -d '{"EventTypeID":13,"CampaignID":1001,"ChannelID":504}'
echo

# 8. Once the platform is done and nothing waits to be reported, reconcile with Optimove.
reported() {
    curl -sf "$PLATFORM/sandbox/campaigns" | grep -q '"idle": *true' \
        && curl -sf "$SERVICE/metrics" | grep -Eq '^optibridge_report_backlog\{tenant="demo"\} 0(\.0)?$' \
        && optibridge reconcile 1001
}
wait_until 180 "the campaign sent and reported" reported
optibridge reconcile 1001
# One send, so one platform campaign (a send the platform refuses must not make more).
curl -sf "$PLATFORM/sandbox/campaigns" \
    | python3 -c 'import json, sys; print("platform campaigns:", json.load(sys.stdin)["total"])'
