package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// Socket Mode connection states, for /readyz.
const (
	socketUnused int32 = iota
	socketConnecting
	socketConnected
)

// ackTimeout bounds handing an ack to the socket writer; a socket that cannot
// take it within this long is reconnecting, and Slack will resend.
const ackTimeout = 2 * time.Second

// RunSocketMode serves Slack over a Socket Mode connection until ctx ends,
// calling the same handlers as HTTP mode. Slack spreads envelopes over all of
// an app's connections (at most 10), so each replica runs one; every envelope
// is acked as soon as its handler returns, and slow work continues after.
//
// slack-go reconnects by itself when Slack asks (disconnect warnings,
// refresh_requested) or the socket dies; RunSocketMode only returns when the
// app token is refused or ctx ends. /readyz fails while it is not connected.
func (s *Server) RunSocketMode(ctx context.Context, client *socketmode.Client) error {
	s.sockets.Add(1)
	defer s.sockets.Done()
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	s.socket.Store(socketConnecting)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var inflight sync.WaitGroup // envelopes being handled and acked
	defer inflight.Wait()       // before cancel: let them ack
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(ctx) }()
	for {
		select {
		case err := <-runErr:
			if ctx.Err() != nil {
				s.socket.Store(socketUnused)
				return ctx.Err()
			}
			// Refused: stay "connecting" so that /readyz keeps failing.
			return fmt.Errorf("socket mode: %w", err)
		case <-s.closing:
			// Ack what was taken before hanging up; anything not taken yet
			// Slack gives to another connection.
			inflight.Wait()
			cancel()
			<-runErr
			s.socket.Store(socketUnused)
			return ErrClosed
		case evt := <-client.Events:
			s.socketEvent(ctx, client, evt, &inflight)
		}
	}
}

// SocketConnected reports whether the Socket Mode connection is up (false
// in HTTP mode).
func (s *Server) SocketConnected() bool { return s.socket.Load() == socketConnected }

// SocketEverConnected reports whether Socket Mode has been connected since
// the start: before that, "not connected" means "not yet", not "lost".
func (s *Server) SocketEverConnected() bool { return s.socketUp.Load() }

// ErrClosed is returned by RunSocketMode once Close has begun.
var ErrClosed = errors.New("handlers: closed")

func (s *Server) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event, inflight *sync.WaitGroup) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		s.socket.Store(socketConnecting)
		s.log.DebugContext(ctx, "socket mode connecting")
	case socketmode.EventTypeConnectionError:
		s.socket.Store(socketConnecting)
		s.log.WarnContext(ctx, "socket mode connection error", "error", evt.Data)
	case socketmode.EventTypeInvalidAuth:
		s.log.ErrorContext(ctx, "socket mode: the app-level token was refused")
	case socketmode.EventTypeConnected:
		s.log.InfoContext(ctx, "socket mode connected")
	case socketmode.EventTypeHello:
		s.socket.Store(socketConnected)
		s.socketUp.Store(true)
		if evt.Request != nil {
			s.log.InfoContext(ctx, "socket mode hello", "connections", evt.Request.NumConnections)
		}
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
		s.log.WarnContext(ctx, "socket mode", "event", evt.Type, "error", evt.Data)
	case socketmode.EventTypeErrorBadMessage:
		// Ack it anyway if we can: a retry of a message we cannot parse cannot help.
		if bad, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			var env struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if json.Unmarshal(bad.Message, &env) == nil && env.EnvelopeID != "" {
				s.ack(ctx, client, env.EnvelopeID, nil)
			}
		}
		s.log.WarnContext(ctx, "socket mode: unparsable message")
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return
		}
		// Each envelope in its own goroutine: one slow views.open must not hold
		// back the acks of the others.
		id := evt.Request.EnvelopeID
		inflight.Go(func() {
			payload := s.handleEnvelope(ctx, evt)
			if u, ok := payload.(unrecordedAck); ok {
				if u.payload == nil {
					// Not acked: Slack redelivers it (to this or another
					// connection) rather than lose what it asked for.
					return
				}
				payload = u.payload
			}
			s.ack(ctx, client, id, payload)
		})
	}
}

// handleEnvelope calls the transport-neutral handler for one envelope and
// returns its ack payload.
func (s *Server) handleEnvelope(ctx context.Context, evt socketmode.Event) any {
	switch data := evt.Data.(type) {
	case slack.SlashCommand:
		return s.HandleCommand(ctx, data)
	case slack.InteractionCallback:
		return s.HandleInteraction(ctx, data)
	case slackevents.EventsAPIEvent:
		if evt.Request.RetryAttempt > 0 {
			s.log.InfoContext(ctx, "socket mode: event redelivered", "attempt", evt.Request.RetryAttempt, "reason", evt.Request.RetryReason)
		}
		return s.HandleEvent(ctx, data)
	}
	return nil
}

func (s *Server) ack(ctx context.Context, client *socketmode.Client, envelopeID string, payload any) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := client.AckCtx(ctx, envelopeID, payload); err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "socket mode ack", "envelope", envelopeID, "error", err)
	}
}
