package main

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		list    string
		want    []string
		wantErr bool
	}{
		{list: "", want: nil},
		{list: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{list: " 10.1.2.3/8 , 192.0.2.1,fd00::/8 ", want: []string{"10.0.0.0/8", "192.0.2.1/32", "fd00::/8"}},
		{list: "2001:db8::1", want: []string{"2001:db8::1/128"}},
		{list: "10.0.0.0/8,,", want: []string{"10.0.0.0/8"}},
		{list: "proxy.internal", wantErr: true},
		{list: "10.0.0.0/33", wantErr: true},
	}
	for _, tt := range tests {
		got, err := prefixes("WALLET_TRUSTED_PROXIES", tt.list)
		if tt.wantErr {
			if err == nil {
				t.Errorf("prefixes(%q) = %v, want an error", tt.list, got)
			}
			continue
		}
		var want []netip.Prefix
		for _, p := range tt.want {
			want = append(want, netip.MustParsePrefix(p))
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("prefixes(%q) = %v, %v; want %v", tt.list, got, err, want)
		}
	}
}
