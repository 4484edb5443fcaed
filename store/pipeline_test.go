package store

import (
	"testing"

	"github.com/google/uuid"
)

func TestPGArgs(t *testing.T) {
	id := uuid.MustParse("01936d2c-7c4b-7a3e-9f00-0123456789ab")
	tests := map[string]struct {
		in, want []any
	}{
		"no UUID":       {in: []any{1, "a", nil}, want: []any{1, "a", nil}},
		"UUID as bytes": {in: []any{id, 5}, want: []any{[16]byte(id), 5}},
		"nil UUID kept": {in: []any{nil, uuid.Nil}, want: []any{nil, [16]byte{}}},
		"empty":         {in: []any{}, want: []any{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := append([]any(nil), tc.in...)
			got := pgArgs(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("pgArgs(%v) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("pgArgs(%v)[%d] = %#v, want %#v", before, i, got[i], tc.want[i])
				}
			}
			for i := range before {
				if tc.in[i] != before[i] {
					t.Errorf("pgArgs changed its argument %d: %#v, was %#v", i, tc.in[i], before[i])
				}
			}
		})
	}
}
