package kubestate

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectName(t *testing.T) {
	long := strings.Repeat("periodic-ci-openshift-release-master-nightly-", 6) // 270 characters
	cases := []struct {
		name, job, want string
	}{
		{name: "a valid name is kept", job: "pull-ci-openshift-origin-main-e2e-aws", want: "pull-ci-openshift-origin-main-e2e-aws"},
		{name: "dots are kept", job: "pull-ci-openshift-release-4.15-e2e", want: "pull-ci-openshift-release-4.15-e2e"},
		{name: "upper case is hashed", job: "Foo", want: "foo-1cbec737f8"},
		{name: "underscores", job: "a_b", want: "a-b-648fa9b31b"},
		{name: "runs of other characters are one dash", job: "UPPER.case/Job name", want: "upper-case-job-name-86951b1e84"},
		{name: "leading and trailing dashes", job: "-x-", want: "x-c6cf95e52d"},
		{name: "empty", job: "", want: "e3b0c44298"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ObjectName(c.job)
			if got != c.want {
				t.Errorf("ObjectName(%q) = %q, want %q", c.job, got, c.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("ObjectName(%q) = %q, not an object name: %v", c.job, got, errs)
			}
			if again := ObjectName(c.job); again != got {
				t.Errorf("ObjectName(%q) gave %q, then %q", c.job, got, again)
			}
		})
	}

	t.Run("too long", func(t *testing.T) {
		got := ObjectName(long)
		if len(got) > validation.DNS1123SubdomainMaxLength || len(validation.IsDNS1123Subdomain(got)) > 0 {
			t.Fatalf("ObjectName of %d characters = %q (%d): not an object name", len(long), got, len(got))
		}
		if !strings.HasPrefix(got, long[:200]) {
			t.Errorf("ObjectName(long) = %q lost the job's prefix", got)
		}
		if other := ObjectName(long + "x"); other == got {
			t.Errorf("two long names share object %q", got)
		}
	})

	t.Run("distinct jobs get distinct names", func(t *testing.T) {
		seen := map[string]string{}
		for _, job := range []string{"a", "A", "a_", "a-", "a.", "a/b", "a-b", "a--b", "A-B", "a_b"} {
			n := ObjectName(job)
			if prev, ok := seen[n]; ok {
				t.Errorf("jobs %q and %q share object %q", prev, job, n)
			}
			seen[n] = job
		}
	})
}

func TestShardName(t *testing.T) {
	for i, want := range map[int]string{0: "table-00", 7: "table-07", 15: "table-15", 123: "table-123"} {
		if got := shardName(i); got != want {
			t.Errorf("shardName(%d) = %q, want %q", i, got, want)
		}
	}
}
