package golist

import "testing"

func TestIsCarrier(t *testing.T) {
	for path, want := range map[string]bool{
		"github.com/palyra/palyra-go/gateway/quiccarrier": true,
		"github.com/palyra/palyra-go/gateway/grpccarrier": true,
		"github.com/palyra/palyra-go/node/quiccarrier":    true,
		"github.com/palyra/palyra-go/node/grpccarrier":    true,
		"github.com/palyra/palyra-go/gateway/carrier":     true,
		"github.com/palyra/palyra-go/node/carrier":        true,
		"github.com/palyra/palyra-go/gateway":             false,
		"github.com/palyra/palyra-go/gateway/dispatch":    false,
		"github.com/palyra/palyra-go/node":                false,
		"github.com/palyra/palyra-go/node/carrierpigeon":  false,
		"example.com/quiccarrier":                         false,
	} {
		if got := IsCarrier(path); got != want {
			t.Errorf("IsCarrier(%q) = %v, want %v", path, got, want)
		}
	}
}
