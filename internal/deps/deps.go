package deps

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/casbin/casbin/v2"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/socketmode"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/oauth2/clientcredentials"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "gopkg.in/yaml.v3"
	_ "github.com/gorilla/websocket"
)
