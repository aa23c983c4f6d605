package expert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"smtrain/envbridge"
)

// Styles of expert episodes (Options.Style).
const (
	// StyleVaried is the default: information requests in a random order,
	// an optional look at the data, one of several models with random
	// hyperparameters, deliberate bugs fixed in the next turn and an
	// optional second model. Its code replies are 2,200-2,900 characters
	// drawn from many modes.
	StyleVaried = "varied"
	// StyleCanonical is one fixed way to solve a task: request all the
	// information in one turn, then run one short program (standardised
	// features with one-hot categories; logistic or linear regression by
	// gradient descent for probabilities and real values, 15-nearest
	// neighbours for labels) whose only episode-dependent parts are the
	// paths and column names read from the observation and the model for
	// the metric's problem kind. It is the imitation target a small
	// policy can learn exactly (see results/dojo/README.md).
	StyleCanonical = "canonical"
)

// Styles lists the valid Options.Style values.
var Styles = []string{StyleVaried, StyleCanonical}

// canonicalCode is the canonical program. Placeholders: {DATA} {OUT} {ID}
// {TARGET} {MODEL}.
const canonicalCode = `import csv
import math
import os

DATA, OUT = '{DATA}', '{OUT}'
ID, TARGET = '{ID}', '{TARGET}'
train = list(csv.DictReader(open(os.path.join(DATA, 'train.csv'))))
test = list(csv.DictReader(open(os.path.join(DATA, 'test.csv'))))
cols = [c for c in train[0] if c not in (ID, TARGET)]
num = []
for c in cols:
    try:
        [float(r[c]) for r in train + test]
        num.append(c)
    except ValueError:
        pass
levels = {c: sorted(set(r[c] for r in train)) for c in cols if c not in num}


def features(r):
    x = [float(r[c]) for c in num]
    for c, vs in levels.items():
        x += [float(r[c] == v) for v in vs]
    return x


X = [features(r) for r in train + test]
mu = [sum(v) / len(v) for v in zip(*X)]
sd = [math.sqrt(sum((a - m) ** 2 for a in v) / len(v)) or 1.0 for v, m in zip(zip(*X), mu)]
Z = [[(a - m) / s for a, m, s in zip(x, mu, sd)] for x in X]
Ztr, Zte = Z[:len(train)], Z[len(train):]
{MODEL}os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, 'submission.csv'), 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow([ID, TARGET])
    w.writerows(zip([r[ID] for r in test], preds))
print('wrote', len(preds), 'predictions')
`

// linearModel fits a linear model on Ztr by full-batch gradient descent
// (100 epochs, step 0.5) through the link {LINK} and sets preds.
const linearModel = `y = [float(r[TARGET]) for r in train]
w, b = [0.0] * len(Ztr[0]), sum(y) / len(y)


def link(s):
    return {LINK}


for epoch in range(100):
    e = [link(b + sum(map(float.__mul__, w, z))) - t for z, t in zip(Ztr, y)]
    w = [wj - 0.5 * sum(ei * z[j] for ei, z in zip(e, Ztr)) / len(y) for j, wj in enumerate(w)]
    b -= 0.5 * sum(e) / len(y)
preds = ['%.4f' % link(b + sum(map(float.__mul__, w, z))) for z in Zte]
`

// knnModel is a 15-nearest-neighbours majority vote.
const knnModel = `preds = []
for z in Zte:
    near = sorted(range(len(Ztr)), key=lambda i: math.dist(z, Ztr[i]))[:15]
    ys = [train[i][TARGET] for i in near]
    preds.append(max(sorted(set(ys)), key=ys.count))
`

// canonicalModel is the model part of the canonical program for a kind
// and the name the expert gives it.
func canonicalModel(k Kind) (code, name string) {
	switch k {
	case Binary:
		return strings.Replace(linearModel, "{LINK}", "1 / (1 + math.exp(-s))", 1), "logistic regression"
	case Classify:
		return knnModel, "15-nearest-neighbours classifier"
	}
	return strings.Replace(linearModel, "{LINK}", "s", 1), "linear regression"
}

// CanonicalProgram is the canonical solution for a task with the given
// metric, paths and columns.
func CanonicalProgram(metric, data, out, id, target string) string {
	model, _ := canonicalModel(kindOf(metric))
	return strings.NewReplacer("{DATA}", data, "{OUT}", out, "{ID}", id, "{TARGET}", target,
		"{MODEL}", model).Replace(canonicalCode)
}

// Canonical prose: fixed sentences, so the only thing a policy must read
// from the observations is what the code needs.
const (
	canonicalInfoProse = "Let me start by requesting all the competition information at once: the overview, the sample submission, the data layout and the input/output paths."
	canonicalCodeProse = "I have all the information I need. I will train a %s on standardised features with one-hot encoded categories and write the predictions for the test set to submission.csv."
)

// playCanonical plays the canonical episode: all information, then the
// canonical program.
func (a *agent) playCanonical(ctx context.Context) error {
	task := a.env.Task()
	res, err := a.act(ctx, canonicalInfoProse, info("all"))
	if err != nil {
		return err
	}
	if a.done {
		return ErrBudget
	}
	paths := map[string]string{}
	for _, m := range pathRE.FindAllStringSubmatch(envbridge.FeedbackText(res.Obs), -1) {
		paths[m[1]] = m[2]
	}
	data, out := paths["data_path"], paths["output_path"]
	if data == "" || out == "" {
		return errors.New("expert: data_path/output_path not found in the feedback")
	}
	prog := CanonicalProgram(task.Metric.Name, data, out, task.IDColumn, task.Targets[0])
	_, name := canonicalModel(kindOf(task.Metric.Name))
	res, err = a.act(ctx, fmt.Sprintf(canonicalCodeProse, name), code(envbridge.ActExecuteCode, prog))
	if err != nil {
		return err
	}
	a.res.Models = append(a.res.Models, name)
	if res.Obs["action_status"] != "SUCCESS" {
		return fmt.Errorf("expert: canonical program failed:\n%s", envbridge.FeedbackText(res.Obs))
	}
	if a.env.Stats().BestRaw == nil {
		return ErrBudget
	}
	return nil
}
