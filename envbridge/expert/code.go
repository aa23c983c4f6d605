package expert

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Kind is the prediction problem the metric implies.
type Kind int

// Problem kinds.
const (
	Binary     Kind = iota // probability of class 1 (AUC, log loss)
	Classify               // labels (accuracy, F1)
	Regression             // real values (RMSE, MAE, R²)
)

// kindOf maps a metric name to a problem kind.
func kindOf(metric string) Kind {
	switch metric {
	case "auc", "logloss":
		return Binary
	case "accuracy", "f1", "qwk", "map@3":
		return Classify
	}
	return Regression
}

// Model is one stdlib-only Python solution.
type Model struct {
	Name  string // short name used in prose, e.g. "logistic regression"
	Kind  Kind
	body  string // Python: uses Ztr, Zte, train, test, TARGET; sets preds
	quad  bool   // add squared numeric features
	Prose string // what the expert says about it
}

// prelude loads the CSVs, one-hot encodes text columns and standardises.
// Placeholders: {DATA} {OUT} {ID} {TARGET}.
const prelude = `import csv
import math
import os

DATA_DIR = '{DATA}'
OUT_DIR = '{OUT}'
ID, TARGET = '{ID}', '{TARGET}'


def load(name):
    with open(os.path.join(DATA_DIR, name), newline='') as f:
        return list(csv.DictReader(f))


train = load('train.csv')
test = load('test.csv')
cols = [c for c in train[0] if c not in (ID, TARGET)]


def is_number(c):
    try:
        for r in train:
            float(r[c])
        return True
    except ValueError:
        return False


num = [c for c in cols if is_number(c)]
cat = [c for c in cols if c not in num]
levels = {c: sorted(set(r[c] for r in train)) for c in cat}


def features(r):
    x = [float(r[c]) for c in num]
    for c in cat:
        x += [1.0 if r[c] == v else 0.0 for v in levels[c]]
    return x

{EXTRA}
Xtr = [features(r) for r in train]
Xte = [features(r) for r in test]
d = len(Xtr[0])
mu = [sum(x[j] for x in Xtr) / len(Xtr) for j in range(d)]
sd = [math.sqrt(sum((x[j] - mu[j]) ** 2 for x in Xtr) / len(Xtr)) or 1.0 for j in range(d)]
Ztr = [[(x[j] - mu[j]) / sd[j] for j in range(d)] for x in Xtr]
Zte = [[(x[j] - mu[j]) / sd[j] for j in range(d)] for x in Xte]
print('train', len(train), 'test', len(test), 'features', d, '(numeric: %d, one-hot from %s)' % (len(num), cat or 'none'))
`

// squares adds squared numeric features (for the quadratic regression).
const squares = `
_base_features = features


def features(r):
    x = _base_features(r)
    return x + [float(r[c]) ** 2 for c in num]
`

// writer writes the submission. Placeholder {FILE}, {HEADER}.
const writer = `
os.makedirs(OUT_DIR, exist_ok=True)
with open(os.path.join(OUT_DIR, '{FILE}'), 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow([ID, {HEADER}])
    for r, p in zip(test, preds):
        w.writerow([r[ID], p])
print('wrote', len(preds), 'predictions to', os.path.join(OUT_DIR, '{FILE}'))
`

func logistic(r *rand.Rand) Model {
	epochs := 40 + 10*r.IntN(5)
	lr := []string{"0.5", "0.8", "1.0"}[r.IntN(3)]
	l2 := []string{"0.0", "0.001", "0.01"}[r.IntN(3)]
	return Model{Name: "logistic regression", Kind: Binary, Prose: fmt.Sprintf("a logistic regression trained by full-batch gradient descent (%d epochs, learning rate %s, L2 %s) on standardised features with one-hot encoded categories", epochs, lr, l2),
		body: fmt.Sprintf(`
y = [float(r[TARGET]) for r in train]
w = [0.0] * d
b = 0.0
n = len(Ztr)
for epoch in range(%d):
    gw = [0.0] * d
    gb = 0.0
    for x, t in zip(Ztr, y):
        p = 1.0 / (1.0 + math.exp(-(b + sum(map(float.__mul__, w, x)))))
        e = p - t
        gw = [g + e * xi for g, xi in zip(gw, x)]
        gb += e
    w = [wi - %s * (g / n + %s * wi) for wi, g in zip(w, gw)]
    b -= %s * gb / n
    if epoch %% 10 == 0:
        loss = -sum(t * math.log(max(1e-12, 1.0 / (1.0 + math.exp(-(b + sum(map(float.__mul__, w, x)))))))
                    + (1 - t) * math.log(max(1e-12, 1.0 - 1.0 / (1.0 + math.exp(-(b + sum(map(float.__mul__, w, x)))))))
                    for x, t in zip(Ztr, y)) / n
        print('epoch', epoch, 'log loss %%.4f' %% loss)
preds = ['%%.5f' %% (1.0 / (1.0 + math.exp(-(b + sum(map(float.__mul__, w, x)))))) for x in Zte]
`, epochs, lr, l2, lr)}
}

func knnProba(r *rand.Rand) Model {
	k := 15 + 5*r.IntN(5)
	return Model{Name: fmt.Sprintf("%d-nearest-neighbours", k), Kind: Binary, Prose: fmt.Sprintf("a k-nearest-neighbours model (k=%d, Euclidean distance on standardised features) that predicts the share of positives among the neighbours", k),
		body: fmt.Sprintf(`import heapq

y = [float(r[TARGET]) for r in train]
K = %d
preds = []
for x in Zte:
    near = heapq.nsmallest(K, ((math.dist(x, z), i) for i, z in enumerate(Ztr)))
    preds.append('%%.4f' %% ((sum(y[i] for _, i in near) + 0.5) / (K + 1)))
`, k)}
}

func leastSquares(r *rand.Rand, quad bool) Model {
	lam := []string{"0.0", "0.1", "1.0"}[r.IntN(3)]
	name, prose := "linear regression", "an ordinary least-squares linear regression solved with the normal equations (ridge %s) by Gaussian elimination"
	if quad {
		name, prose = "quadratic regression", "a least-squares regression on the features and their squares, solved with the normal equations (ridge %s) by Gaussian elimination"
	}
	return Model{Name: name, Kind: Regression, quad: quad, Prose: fmt.Sprintf(prose, lam),
		body: fmt.Sprintf(`
y = [float(r[TARGET]) for r in train]
A = [z + [1.0] for z in Ztr]
m = d + 1
M = [[sum(a[i] * a[j] for a in A) + (%s if i == j and i < d else 0.0) for j in range(m)] for i in range(m)]
v = [sum(a[i] * t for a, t in zip(A, y)) for i in range(m)]
for c in range(m):
    p = max(range(c, m), key=lambda i: abs(M[i][c]))
    M[c], M[p] = M[p], M[c]
    v[c], v[p] = v[p], v[c]
    for i in range(c + 1, m):
        f = M[i][c] / M[c][c]
        for j in range(c, m):
            M[i][j] -= f * M[c][j]
        v[i] -= f * v[c]
coef = [0.0] * m
for i in reversed(range(m)):
    coef[i] = (v[i] - sum(M[i][j] * coef[j] for j in range(i + 1, m))) / M[i][i]
fit = [sum(c * a for c, a in zip(coef, row)) for row in A]
print('train RMSE %%.3f' %% math.sqrt(sum((f - t) ** 2 for f, t in zip(fit, y)) / len(y)))
preds = ['%%.3f' %% sum(c * a for c, a in zip(coef, z + [1.0])) for z in Zte]
`, lam)}
}

func knnRegress(r *rand.Rand) Model {
	k := 5 + 2*r.IntN(6)
	return Model{Name: fmt.Sprintf("%d-nearest-neighbours regression", k), Kind: Regression, Prose: fmt.Sprintf("a k-nearest-neighbours regression (k=%d) averaging the targets of the closest training rows in standardised feature space", k),
		body: fmt.Sprintf(`import heapq

y = [float(r[TARGET]) for r in train]
K = %d
preds = []
for x in Zte:
    near = heapq.nsmallest(K, ((math.dist(x, z), i) for i, z in enumerate(Ztr)))
    preds.append('%%.3f' %% (sum(y[i] for _, i in near) / K))
`, k)}
}

func meanBaseline() Model {
	return Model{Name: "mean baseline", Kind: Regression, Prose: "a simple baseline that predicts the training mean for every row, to check the submission format end to end",
		body: `
y = [float(r[TARGET]) for r in train]
mean = sum(y) / len(y)
print('training mean %.3f' % mean)
preds = ['%.3f' % mean for _ in test]
`}
}

func knnClassify(r *rand.Rand) Model {
	k := 3 + 2*r.IntN(5)
	return Model{Name: fmt.Sprintf("%d-nearest-neighbours classifier", k), Kind: Classify, Prose: fmt.Sprintf("a k-nearest-neighbours classifier (k=%d, majority vote, Euclidean distance on standardised features)", k),
		body: fmt.Sprintf(`import heapq
from collections import Counter

y = [r[TARGET] for r in train]
K = %d
preds = []
for x in Zte:
    near = heapq.nsmallest(K, ((math.dist(x, z), i) for i, z in enumerate(Ztr)))
    preds.append(Counter(y[i] for _, i in near).most_common(1)[0][0])
print('predicted classes:', dict(Counter(preds)))
`, k)}
}

func nearestCentroid() Model {
	return Model{Name: "nearest-centroid classifier", Kind: Classify, Prose: "a nearest-centroid classifier: each class is represented by the mean of its standardised training rows",
		body: `
classes = sorted(set(r[TARGET] for r in train))
cent = {}
for c in classes:
    rows = [z for z, r in zip(Ztr, train) if r[TARGET] == c]
    cent[c] = [sum(z[j] for z in rows) / len(rows) for j in range(d)]
acc = sum(min(classes, key=lambda c: math.dist(z, cent[c])) == r[TARGET] for z, r in zip(Ztr, train)) / len(train)
print('training accuracy %.4f' % acc)
preds = [min(classes, key=lambda c: math.dist(z, cent[c])) for z in Zte]
`}
}

func gaussianNB() Model {
	return Model{Name: "Gaussian naive Bayes", Kind: Classify, Prose: "a Gaussian naive Bayes classifier with per-class means and variances of the standardised features",
		body: `
classes = sorted(set(r[TARGET] for r in train))
stats = {}
for c in classes:
    rows = [z for z, r in zip(Ztr, train) if r[TARGET] == c]
    m = [sum(z[j] for z in rows) / len(rows) for j in range(d)]
    v = [sum((z[j] - m[j]) ** 2 for z in rows) / len(rows) + 1e-3 for j in range(d)]
    stats[c] = (math.log(len(rows) / len(train)), m, v)


def loglik(z, c):
    prior, m, v = stats[c]
    return prior - 0.5 * sum(math.log(2 * math.pi * v[j]) + (z[j] - m[j]) ** 2 / v[j] for j in range(d))


acc = sum(max(classes, key=lambda c: loglik(z, c)) == r[TARGET] for z, r in zip(Ztr, train)) / len(train)
print('training accuracy %.4f' % acc)
preds = [max(classes, key=lambda c: loglik(z, c)) for z in Zte]
`}
}

// modelsFor lists candidate models for a kind; the first list is the
// "first try", the second the "improvement" pool.
func modelsFor(k Kind, r *rand.Rand) []Model {
	switch k {
	case Binary:
		return []Model{logistic(r), knnProba(r)}
	case Classify:
		return []Model{knnClassify(r), nearestCentroid(), gaussianNB()}
	}
	return []Model{leastSquares(r, false), leastSquares(r, true), knnRegress(r), meanBaseline()}
}

// bug is a deliberate mistake of a first attempt and how the expert
// explains the fix after seeing the error.
type bug struct {
	name   string
	apply  func(code string) string
	fixMsg string
	ok     func(k Kind, hasCat bool) bool
}

var bugs = []bug{
	{"typo", func(c string) string {
		return strings.Replace(c, "for r, p in zip(test, preds):", "for r, p in zip(test, predictions):", 1)
	},
		"The run failed with a NameError: I referred to `predictions` but the list is called `preds`. I will fix the variable name and run it again.",
		func(Kind, bool) bool { return true }},
	{"no-onehot", func(c string) string {
		return strings.Replace(c, "num = [c for c in cols if is_number(c)]", "num = list(cols)", 1)
	}, "The code crashed converting a text column to float. Not every column is numeric, so I will detect the numeric columns and one-hot encode the categorical ones.",
		func(_ Kind, hasCat bool) bool { return hasCat }},
	{"missing-import", func(c string) string { return strings.Replace(c, "import math\n", "", 1) },
		"The traceback says `math` is not defined: I forgot the import. Adding `import math` and re-running.",
		func(Kind, bool) bool { return true }},
	{"wrong-file", func(c string) string { return strings.ReplaceAll(c, "'submission.csv'", "'predictions.csv'") },
		"The code ran but no submission was found: I saved the predictions as predictions.csv, while the evaluation expects submission.csv in the output directory. Fixing the file name.",
		func(Kind, bool) bool { return true }},
	{"wrong-header", func(c string) string {
		return strings.Replace(c, "w.writerow([ID, TARGET])", "w.writerow([ID, 'prediction'])", 1)
	},
		"The submission was rejected because the target column is missing: I named the column 'prediction'. The header must match the sample submission, so I will use the target column name.",
		func(Kind, bool) bool { return true }},
}

// program assembles a full solution.
func program(m Model, data, out, id, target string) string {
	extra := ""
	if m.quad {
		extra = squares
	}
	r := strings.NewReplacer("{DATA}", data, "{OUT}", out, "{ID}", id, "{TARGET}", target, "{EXTRA}", extra)
	code := r.Replace(prelude) + m.body
	code += strings.NewReplacer("{FILE}", "submission.csv", "{HEADER}", "TARGET").Replace(writer)
	return code
}

// exploreCode prints a quick look at the data (used with validate_code).
func exploreCode(data, target string) string {
	return strings.NewReplacer("{DATA}", data, "{TARGET}", target).Replace(`import csv
import os
from collections import Counter

DATA_DIR = '{DATA}'
with open(os.path.join(DATA_DIR, 'train.csv'), newline='') as f:
    train = list(csv.DictReader(f))
with open(os.path.join(DATA_DIR, 'test.csv'), newline='') as f:
    test = list(csv.DictReader(f))
print('train rows:', len(train), 'test rows:', len(test))
print('columns:', list(train[0].keys()))
print('first row:', train[0])
y = [r['{TARGET}'] for r in train]
if len(set(y)) <= 10:
    print('target counts:', dict(Counter(y)))
else:
    v = [float(t) for t in y]
    print('target mean %.3f min %.3f max %.3f' % (sum(v) / len(v), min(v), max(v)))
`)
}
