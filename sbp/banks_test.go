package sbp

import "testing"

func TestLoadBanks(t *testing.T) {
	t.Parallel()
	banks, err := LoadBanks()
	if err != nil {
		t.Fatal(err)
	}
	list := banks.List()
	if len(list) < 10 {
		t.Fatalf("only %d banks", len(list))
	}
	b, ok := banks.Find("100000000111")
	if !ok || b.Name != "Сбербанк" || b.BIC != "044525225" {
		t.Fatalf("Find(100000000111) = %+v, %v", b, ok)
	}
	if _, ok := banks.Find("999999999999"); ok {
		t.Fatal("unknown bank found")
	}
	list[0].Name = "changed"
	if banks.List()[0].Name == "changed" {
		t.Fatal("List exposes internal state")
	}
}
