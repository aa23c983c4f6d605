package decode

import (
	"context"
	"slices"
	"strings"
	"testing"

	"smtrain/data"
	"smtrain/model"
)

func TestChatPromptAndPolicy(t *testing.T) {
	tok := data.ByteTokenizer()
	msgs := []data.Message{
		{Role: data.RoleSystem, Content: "be brief"},
		{Role: data.RoleUser, Content: "hi"},
		{Role: data.RoleAssistant, Content: "ok"},
		{Role: data.RoleUser, Content: strings.Repeat("long observation ", 4)},
	}
	full, err := ChatPrompt(tok, msgs, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if full[0] != tok.SystemID() || full[len(full)-1] != tok.AssistantID() {
		t.Fatalf("prompt %v: want <|system|> ... <|assistant|>", full)
	}
	if n := strings.Count(tok.Decode(full), "long observation"); n != 4 {
		t.Fatalf("prompt text %q", tok.Decode(full))
	}
	short, err := ChatPrompt(tok, msgs, 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(short) > 40 || short[len(short)-1] != tok.AssistantID() || !slices.Equal(short[len(short)-10:], full[len(full)-10:]) {
		t.Fatalf("truncated prompt (%d tokens) %v", len(short), short)
	}

	cfg := model.Tiny
	cfg.VocabSize = tok.VocabSize()
	cfg.NPositions = 96
	p := randomModel(t, cfg, 8)
	o := DefaultOptions()
	o.MaxNewTokens = 16
	cp := NewChatPolicy(p, tok, o)
	res, _, err := cp.Complete(context.Background(), msgs, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := cp.Complete(context.Background(), msgs, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if len(r.Prompt)+o.MaxNewTokens > cfg.NPositions || r.Prompt[len(r.Prompt)-1] != tok.AssistantID() {
			t.Fatalf("sample %d prompt of %d tokens", i, len(r.Prompt))
		}
		if r.Text != tok.Decode(r.Tokens) || !slices.Equal(r.Actions, again[i].Actions) {
			t.Fatalf("sample %d: text or determinism", i)
		}
	}
}
