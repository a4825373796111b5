package app

import (
	"net/http"
	"time"
)

// outboundClient is the one HTTP client of a replica's calls out: the Slack
// Web API, response_urls and the BTP CLI server (each package makes its own
// copy that never follows a redirect). Its transport keeps an idle connection
// per worker that may call the same host at once; Go's default keeps two per
// host, so beyond two concurrent calls to slack.com or to the CLI server every
// call dialled, and closed, a TLS connection of its own.
func outboundClient(cfg Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Inbox workers and mint workers call out; the notifier, the sweeper and
	// the Home tab a few more at a time.
	perHost := cfg.Workers + cfg.MintWorkers + 8
	tr.MaxIdleConnsPerHost = perHost
	tr.MaxIdleConns = 4 * perHost // Slack API, response_url host, CLI server, identity provider
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}
