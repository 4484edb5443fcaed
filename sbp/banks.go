// Package sbp is walletd's side of the Faster Payments System (СБП): the list of
// member banks, the Gateway interface that issues top-up links and sends payouts,
// and the sandbox that plays the bank for development and tests.
package sbp

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// Bank is an SBP member bank a wallet can withdraw to.
type Bank struct {
	Identifier   string `json:"bankIdentifier"` // 12-digit SBP member id
	Name         string `json:"name"`
	OriginalName string `json:"originalName"`
	BIC          string `json:"bic"`
	LogoURL      string `json:"logoUrl"`
}

//go:embed banks.json
var banksJSON []byte

// Banks is the list of SBP member banks.
type Banks struct {
	list []Bank
}

var (
	memberID = regexp.MustCompile(`^[0-9]{12}$`)
	bicRe    = regexp.MustCompile(`^[0-9]{9}$`)
)

// LoadBanks reads the embedded member list and checks every entry, so a bad
// edit of the data fails at start rather than in a partner's withdrawal.
func LoadBanks() (*Banks, error) {
	var doc struct {
		Banks []Bank `json:"banks"`
	}
	if err := json.Unmarshal(banksJSON, &doc); err != nil {
		return nil, fmt.Errorf("sbp banks: %w", err)
	}
	seen := map[string]bool{}
	for _, b := range doc.Banks {
		if !memberID.MatchString(b.Identifier) || !bicRe.MatchString(b.BIC) || b.Name == "" {
			return nil, fmt.Errorf("sbp banks: bad entry %+v", b)
		}
		if seen[b.Identifier] {
			return nil, fmt.Errorf("sbp banks: duplicate %s", b.Identifier)
		}
		seen[b.Identifier] = true
	}
	return &Banks{list: doc.Banks}, nil
}

// List returns the banks in their published order.
func (b *Banks) List() []Bank { return slices.Clone(b.list) }

// Find returns the bank with an SBP member id.
func (b *Banks) Find(identifier string) (Bank, bool) {
	i := slices.IndexFunc(b.list, func(x Bank) bool { return x.Identifier == identifier })
	if i < 0 {
		return Bank{}, false
	}
	return b.list[i], true
}
