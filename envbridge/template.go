package envbridge

import (
	"fmt"
	"math"
	"strings"
)

// Observation keys added by this project on top of MLE-Dojo's: the budget
// left after the step, which MLE-Dojo's agent loop tracks itself and prints
// in every user turn.
const (
	KeyRemainingSteps   = "remaining_steps"   // int: actions left
	KeyRemainingSeconds = "remaining_seconds" // int: seconds of the time budget left
)

// The texts below are MLE-Dojo's MLEAgent prompts (mledojo/agent/mleagent/
// prompt.py, MIT licence), byte for byte, so that trajectories recorded by
// MLE-Dojo and those produced here render to identical token sequences.

const instructionPrompt = `You are a top-ranked Kaggle grandmaster with extensive competition experience.
            Your objective is to solve a Kaggle competition, 
            with the goal of maximizing the Position Score (Your rank in the leaderboard) in limited steps.
            You must use Machine Learning/Deep Learning/Computer Vision/NLP/etc. methods to solve the problem, 
            the score of random guess or without any ML/DL/CV/NLP methods will be cancelled finally.
            You are likely to train models according to specific competition requirements.
            You have access to a GPU and several CPUs for training DL/ML models.
            Use cuda and PyTorch for faster training whenever needed.

            You have a total of {num_actions} actions available.
            You have a total of {time_left} seconds, including code execution time.

            You have access to exactly three actions with params, and receive corresponding feedback after each action:
            1. request_info: Retrieve specific competition information
               - params: info_type (str), must be one of: "overview", "sample_submission", "data_structure", "data_path", "output_path"
               - feedback: information you requested
            2. validate_code: Test (partial) code execution for debugging purposes or "print" information in the output
               - params: code (str)
               - feedback: execution result (success or failure), error message if failed, code output if success
            3. execute_code: Run completed code, generate submission and get evaluation
               - params: code (str)
               - feedback: execution result, submission status, evaluation score

            Code requirements:
            - Request all information first
            - Read all data files from data_dir
            - Save all submissions to output_dir, should match test_data length
            - Don't add, delete, or modify any files in data_dir
            - Use "print" to output information in the feedback
            - No plotting or visualization is allowed
            - Refer to Sample Submission for the output format
            - Code should be self-contained and not rely on any variables or state outside
            - Code for submission should be completely runnable, otherwise it will be considered as failed
            - Optimize your Model/Parameters/Data Processing/Algorithm for continuous improvement

            Only if "execute_code" action taken, code successfully executed and valid submission generated, 
            you'll be able to get a Position Score (Your rank in the leaderboard) for this competition.

            Response format requirements, strictly one of the following:
            {
                "action": "request_info",
                "params": {
                    "info_type": "<info_type>"
                }
            }
            or
            {
                "action": "validate_code",
                "params": {
                    "code": "<code>"
                }
            }
            or
            {
                "action": "execute_code",
                "params": {
                    "code": "<code>"
                }
            }
            - Must be valid JSON format
            - No additional text or formatting allowed
            `

const errorTemplate = `Execution failed, details below:

            #### Error Start ####
            {observation}
            #### Error End ####
            
            You still have {num_actions} actions available.
            You still have {time_left} seconds left.

            Output your next action strictly following Response format requirements.
            `

const reflectionTemplate = `The results of your previous action:

            #### Results Start ####
            {observation}
            #### Results End ####

            You still have {num_actions} actions available.
            You still have {time_left} seconds left.
            Optimize your Model/Parameters/Data Processing/Algorithm for continuous improvement.

            Output your next action strictly following Response format requirements.
            `

// InstructionPrompt is the first user turn of an episode: MLE-Dojo's
// instruction prompt with the action and time budget filled in.
func InstructionPrompt(numActions, secondsLeft int) string {
	r := strings.NewReplacer("{num_actions}", fmt.Sprint(numActions), "{time_left}", fmt.Sprint(secondsLeft))
	return r.Replace(instructionPrompt)
}

// FormatInitialPrompt renders the first user turn from the observation
// returned by Reset (its remaining_steps and remaining_seconds keys).
func FormatInitialPrompt(obs Observation) string {
	steps, _ := intField(obs, KeyRemainingSteps)
	secs, _ := intField(obs, KeyRemainingSeconds)
	return InstructionPrompt(steps, secs)
}

// FormatObservation renders the user turn that follows an agent action:
// MLE-Dojo's "reflection" template (or its "error" template when
// action_status is FAILED) around the observation's feedback text, with the
// budget taken from remaining_steps and remaining_seconds.
func FormatObservation(obs Observation) string {
	steps, _ := intField(obs, KeyRemainingSteps)
	secs, _ := intField(obs, KeyRemainingSeconds)
	return FormatObservationBudget(obs, steps, secs)
}

// FormatObservationBudget is FormatObservation with an explicit budget.
func FormatObservationBudget(obs Observation, stepsLeft, secondsLeft int) string {
	tmpl := reflectionTemplate
	if s, _ := obs["action_status"].(string); s == "FAILED" {
		tmpl = errorTemplate
	}
	r := strings.NewReplacer("{observation}", FeedbackText(obs), "{num_actions}", fmt.Sprint(stepsLeft), "{time_left}", fmt.Sprint(secondsLeft))
	return r.Replace(tmpl)
}

// FeedbackText returns obs.feedback.base.feedback (MLE-Dojo's nesting), or
// a top-level string feedback (MLE-Dojo's reset observation), or the
// base error text when feedback generation failed.
func FeedbackText(obs Observation) string {
	switch fb := obs["feedback"].(type) {
	case string:
		return fb
	case map[string]any:
		if base, ok := fb["base"].(map[string]any); ok {
			if s, ok := base["feedback"].(string); ok {
				return s
			}
			if s, ok := base["error"].(string); ok {
				return s
			}
		}
	}
	return ""
}

// intField reads a JSON-ish number from obs[key].
func intField(obs Observation, key string) (int, bool) {
	switch v := obs[key].(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return int(v), true
	case interface{ Int64() (int64, error) }:
		n, err := v.Int64()
		return int(n), err == nil
	}
	return 0, false
}
