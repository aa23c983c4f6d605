package train

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"smtrain/data"
	"smtrain/decode"
	"smtrain/envbridge"
	"smtrain/envbridge/rollout"
)

// EnvReplay fills SequenceMatch's G side (the replay buffer) with the
// current policy's own multi-turn episodes played in live environments
// instead of single-turn generations from training prompts: at every
// replay refresh the policy plays Episodes episodes of Spec (rollout.Run,
// MLE-Dojo run folders under OUT/replay_env/step-%08d), and each episode,
// with the observations the environment really returned, is templated and
// split like the expert data (seq_mode, n_positions) and added to the
// buffer. The episodes of a refresh that were recorded before a kill are
// reused when the refresh is run again on resume (the environment's own
// nondeterminism is recorded, not replayed); the buffer itself is in every
// checkpoint.
type EnvReplay struct {
	Spec rollout.EnvSpec
	// Describe names the environments for the log.
	Describe string
	// Episodes per refresh (default cfg.ReplaySamples), Parallel episodes
	// at a time (default 1), MaxSteps actions each (default 10).
	Episodes, Parallel, MaxSteps int
	// MaxNew caps the tokens of one reply (default n_positions/2).
	MaxNew int
	// Grammar, when set, constrains the replies (envbridge.ActionGrammar:
	// every reply a valid action).
	Grammar decode.Grammar
}

// EnvReplayDir is the folder of the refreshes' rollouts inside OUT.
const EnvReplayDir = "replay_env"

// envReplayStats are the metrics of one refresh.
type envReplayStats struct {
	Episodes, Failed         int
	MeanReward               float64
	ValidActionRate          float64
	CodeActions, CodeErrors  int
	BackspacesPerEpisode     float64
	Sequences, Buffer        int
	Dir                      string
	MeanSteps, WallS, Scored float64
}

// refreshReplayEnv plays the refresh's episodes with the current
// parameters and adds them to the replay buffer.
func (t *Trainer) refreshReplayEnv(ctx context.Context) error {
	er := t.envReplay
	n := er.Episodes
	if n <= 0 {
		n = max(1, t.cfg.ReplaySamples)
	}
	maxSteps := er.MaxSteps
	if maxSteps <= 0 {
		maxSteps = 10
	}
	maxNew := er.MaxNew
	if maxNew <= 0 || maxNew > t.cfg.NPositions/2 {
		maxNew = t.cfg.NPositions / 2
	}
	o := decode.DefaultOptions()
	o.Temperature, o.MaxNewTokens, o.Workers, o.Grammar = t.cfg.ReplayTemp, maxNew, 1, er.Grammar
	pol := &rollout.ChatPolicy{CP: decode.NewChatPolicy(t.params, t.tok, o)}
	dir := filepath.Join(t.out, EnvReplayDir, fmt.Sprintf("step-%08d", t.st.Step))
	seed := int64(t.rngFor(t.st.Step, 2).Uint64() >> 1)
	s, err := rollout.Run(ctx, pol, er.Spec, rollout.Options{Episodes: n, Parallel: max(1, er.Parallel), MaxSteps: maxSteps, Seed: seed, Out: dir}, nil)
	if err != nil {
		return fmt.Errorf("replay refresh from %s: %w", er.Describe, err)
	}
	var eps []data.Episode
	st := envReplayStats{Episodes: s.Episodes, Failed: s.Failed, MeanReward: s.MeanReward, ValidActionRate: s.ValidActionRate,
		MeanSteps: s.MeanSteps, WallS: s.WallS, Dir: dir}
	for _, r := range s.Results {
		if r.Failed != "" {
			continue
		}
		if r.Reward > 0 {
			st.Scored++
		}
		ce, cn, err := rollout.CodeErrors(r.Dir)
		if err != nil {
			return fmt.Errorf("replay refresh: %w", err)
		}
		st.CodeErrors += ce
		st.CodeActions += cn
		res, err := data.Load([]string{r.Dir}, false)
		if err != nil {
			return fmt.Errorf("replay refresh: episode %s: %w", r.Dir, err)
		}
		eps = append(eps, res.Episodes...)
	}
	if s.Episodes > 0 {
		st.BackspacesPerEpisode = float64(s.Backspaces) / float64(s.Episodes)
		st.Scored /= float64(s.Episodes)
	}
	added, err := t.addReplayEpisodes(eps)
	if err != nil {
		return fmt.Errorf("replay refresh: %w", err)
	}
	st.Sequences, st.Buffer = added, t.replay.Len()
	codeErrRate := any(nil)
	if st.CodeActions > 0 {
		codeErrRate = float64(st.CodeErrors) / float64(st.CodeActions)
	}
	t.bar.println(fmt.Sprintf("replay from %s: %d episodes (%d failed) | mean reward %.3f | scoring %.2f | valid actions %.2f | code errors %d/%d | ⌫/episode %.1f | +%d seqs, buffer %d",
		er.Describe, st.Episodes, st.Failed, st.MeanReward, st.Scored, st.ValidActionRate, st.CodeErrors, st.CodeActions, st.BackspacesPerEpisode, added, st.Buffer))
	return t.metrics.write(Event{Step: t.st.Step, Split: "replay", ElapsedS: t.elapsedS(), Extra: map[string]any{
		"source": "env", "episodes": st.Episodes, "failed": st.Failed, "mean_reward": st.MeanReward, "scoring_rate": st.Scored,
		"valid_action_rate": st.ValidActionRate, "code_actions": st.CodeActions, "code_error_rate": codeErrRate,
		"backspaces_per_episode": st.BackspacesPerEpisode, "mean_steps": st.MeanSteps, "sequences": added,
		"buffer": st.Buffer, "dir": dir, "wall_s": st.WallS}})
}

// addReplayEpisodes templates eps, splits them like the training data and
// adds every sequence to the replay buffer; it returns how many it added.
func (t *Trainer) addReplayEpisodes(eps []data.Episode) (int, error) {
	if len(eps) == 0 {
		return 0, nil
	}
	seqs, _, err := data.BuildSeqs(t.tok, eps, t.cfg.NPositions, data.SeqMode(t.cfg.SeqMode))
	if err != nil {
		return 0, err
	}
	for _, s := range seqs {
		if err := t.replay.Add(s); err != nil {
			return 0, err
		}
	}
	return len(seqs), nil
}

// initEnvReplay checks in's environment replay and offline policy episodes
// against the objective and puts the offline episodes into the (new) replay
// buffer; a resumed run gets its buffer from the checkpoint instead.
func (t *Trainer) initEnvReplay(in Inputs, resuming bool) error {
	if in.EnvReplay == nil && len(in.ReplayData) == 0 {
		return nil
	}
	if t.replay == nil {
		return fmt.Errorf("replay_env and replay_data need an objective with a replay buffer (chi2mix, chi2, kl, ...) and replay_size > 0; objective %s", t.obj.Name())
	}
	if in.EnvReplay != nil && in.EnvReplay.Spec == nil {
		return errors.New("replay_env: no environment")
	}
	t.envReplay = in.EnvReplay
	if resuming {
		return nil // the checkpoint holds the buffer
	}
	n, err := t.addReplayEpisodes(in.ReplayData)
	if err != nil {
		return fmt.Errorf("replay_data: %w", err)
	}
	if n > 0 {
		fmt.Fprintf(t.console, "replay: %d sequences from %d earlier policy episodes\n", n, len(in.ReplayData))
	}
	return nil
}

// MultiEnvSpec spreads episodes over several environment specs in turn
// (episode i runs in spec i mod n as that spec's episode i / n).
type MultiEnvSpec []rollout.EnvSpec

var _ rollout.EnvSpec = MultiEnvSpec(nil)

// Task implements rollout.EnvSpec.
func (m MultiEnvSpec) Task(i int) string { return m[i%len(m)].Task(i / len(m)) }

// Open implements rollout.EnvSpec.
func (m MultiEnvSpec) Open(ctx context.Context, i int, runDir string) (envbridge.Env, error) {
	return m[i%len(m)].Open(ctx, i/len(m), runDir)
}
