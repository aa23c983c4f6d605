package data

import (
	"encoding/json"
	"fmt"
)

// notEpisodeFile recognises the MLE-Dojo files that hold no agent messages
// (the environment's history, its feedback list, an action list) and
// returns an error saying what to pass instead; nil for anything else.
func notEpisodeFile(path string, raw []byte) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		_, comp := obj["competition"]
		_, acts := obj["actions"]
		if comp && acts {
			return fmt.Errorf("%s is an MLE-Dojo environment history (the environment's record of actions and results, without the agent's messages): pass the agent's trajectory beside it (agent_trajectory.json, or agent_history/trajectory.json), or the run folder holding both", path)
		}
		if _, ok := obj["messages"]; ok {
			return nil // a one-line JSONL chat
		}
		return fmt.Errorf("%s holds one JSON object, not a trajectory: smtrain reads JSONL chats (one {\"messages\":[...]} per line), MLE-Dojo run folders and agent trajectories, and AIDE journal.json files", path)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil
	}
	var first map[string]json.RawMessage
	if json.Unmarshal(list[0], &first) == nil {
		_, role := first["role"]
		_, action := first["action"]
		_, feedback := first["feedback"]
		if !role && action && feedback {
			return fmt.Errorf("%s is an MLE-Dojo feedback list (results of actions, without the agent's messages): pass the agent's trajectory (agent_trajectory.json, or agent_history/trajectory.json), or the run folder", path)
		}
		return nil
	}
	var pair []json.RawMessage
	if json.Unmarshal(list[0], &pair) == nil {
		return fmt.Errorf("%s is a list of actions (no agent messages): pass an agent trajectory (agent_trajectory.json), a run folder or JSONL chats", path)
	}
	return nil
}
