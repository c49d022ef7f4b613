// The cert-manager controller, built from the packages of the module
// github.com/cert-manager/cert-manager (tools/certmanager/build.sh says why
// the release's own cmd/controller cannot be used). It takes the flags that
// cert-manager's Helm chart passes and its --config file, then runs the
// controllers the release enables by default, as cmd/controller/app does,
// without leader election (one replica), metrics or profiling.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/controller/scheme"
	defaults "github.com/cert-manager/cert-manager/internal/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/internal/apis/config/controller/validation"
	cmdutil "github.com/cert-manager/cert-manager/internal/cmd/util"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/pkg/controller"
	controllerconfigfile "github.com/cert-manager/cert-manager/pkg/controller/configfile"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util/configfile"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// the controllers and issuers cmd/controller/app registers
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/venafi"
)

func newConfiguration() (*config.ControllerConfiguration, error) {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	if err != nil {
		return nil, err
	}
	versioned := &configv1alpha1.ControllerConfiguration{}
	scheme.Default(versioned)
	cfg := &config.ControllerConfiguration{}
	if err := scheme.Convert(versioned, cfg, nil); err != nil {
		return nil, err
	}
	return cfg, nil
}

// addFlags: the flags cert-manager's chart passes to the controller (the
// rest of the settings go in --config).
func addFlags(fs *pflag.FlagSet, c *config.ControllerConfiguration, file *string) {
	fs.StringVar(file, "config", "", "a ControllerConfiguration file")
	fs.StringVar(&c.ClusterResourceNamespace, "cluster-resource-namespace", c.ClusterResourceNamespace, "namespace of ClusterIssuers' secrets")
	fs.StringVar(&c.LeaderElectionConfig.Namespace, "leader-election-namespace", c.LeaderElectionConfig.Namespace, "namespace of the leader election lease")
	fs.DurationVar(&c.LeaderElectionConfig.LeaseDuration, "leader-election-lease-duration", c.LeaderElectionConfig.LeaseDuration, "")
	fs.DurationVar(&c.LeaderElectionConfig.RenewDeadline, "leader-election-renew-deadline", c.LeaderElectionConfig.RenewDeadline, "")
	fs.DurationVar(&c.LeaderElectionConfig.RetryPeriod, "leader-election-retry-period", c.LeaderElectionConfig.RetryPeriod, "")
	fs.StringVar(&c.ACMEHTTP01Config.SolverImage, "acme-http01-solver-image", c.ACMEHTTP01Config.SolverImage, "")
	fs.IntVar(&c.MaxConcurrentChallenges, "max-concurrent-challenges", c.MaxConcurrentChallenges, "")
	fs.BoolVar(&c.EnableCertificateOwnerRef, "enable-certificate-owner-ref", c.EnableCertificateOwnerRef, "")
	fs.StringSliceVar(&c.Controllers, "controllers", c.Controllers, "")
	logf.AddFlags(&c.Logging, fs)
}

func load(args []string) (*config.ControllerConfiguration, error) {
	cfg, err := newConfiguration()
	if err != nil {
		return nil, err
	}
	var file string
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	addFlags(fs, cfg, &file)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if file != "" {
		// as cmd/controller: the file first, then the flags again over it
		loader, err := configfile.NewConfigurationFSLoader(nil, file)
		if err != nil {
			return nil, err
		}
		fromFile := controllerconfigfile.New()
		if err := loader.Load(fromFile); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
		fromFile.Config.DeepCopyInto(cfg)
		fs = pflag.NewFlagSet("controller", pflag.ContinueOnError)
		addFlags(fs, cfg, &file)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates); err != nil {
		return nil, err
	}
	if errs := validation.ValidateControllerConfiguration(cfg, nil); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	if cfg.LeaderElectionConfig.Enabled {
		return nil, errors.New("this build runs one replica without leader election: set leaderElectionConfig.enabled: false in the config")
	}
	return cfg, logf.ValidateAndApply(&cfg.Logging)
}

// enabled: the controllers to run ("*" is the release's default set,
// "-name" takes one out), as cmd/controller/app/options does; the
// experimental and Gateway API controllers are not offered here.
func enabled(c *config.ControllerConfiguration) sets.Set[string] {
	wanted, disabled := sets.New[string](), []string{}
	for _, name := range c.Controllers {
		switch {
		case name == "*":
			wanted.Insert(defaults.DefaultEnabledControllers...)
		case strings.HasPrefix(name, "-"):
			disabled = append(disabled, strings.TrimPrefix(name, "-"))
		default:
			wanted.Insert(name)
		}
	}
	if len(disabled) > 0 && wanted.Len() == 0 {
		wanted.Insert(defaults.DefaultEnabledControllers...)
	}
	if c.Namespace != "" {
		wanted.Delete(defaults.ClusterScopedControllers...)
	}
	return wanted.Delete(disabled...)
}

func quantity(s string) resource.Quantity { return resource.MustParse(s) }

func run(ctx context.Context, c *config.ControllerConfiguration) error {
	log := logf.FromContext(ctx, "controller")
	g, ctx := errgroup.WithContext(ctx)
	nameservers := c.ACMEDNS01Config.RecursiveNameservers
	if len(nameservers) == 0 {
		nameservers = dnsutil.RecursiveNameservers
	}
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         c.KubeConfig,
		KubernetesAPIQPS:   c.KubernetesAPIQPS,
		KubernetesAPIBurst: c.KubernetesAPIBurst,
		APIServerHost:      c.APIServerHost,
		Namespace:          c.Namespace,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverResourceRequestCPU:    quantity(c.ACMEHTTP01Config.SolverResourceRequestCPU),
			HTTP01SolverResourceRequestMemory: quantity(c.ACMEHTTP01Config.SolverResourceRequestMemory),
			HTTP01SolverResourceLimitsCPU:     quantity(c.ACMEHTTP01Config.SolverResourceLimitsCPU),
			HTTP01SolverResourceLimitsMemory:  quantity(c.ACMEHTTP01Config.SolverResourceLimitsMemory),
			ACMEHTTP01SolverRunAsNonRoot:      c.ACMEHTTP01Config.SolverRunAsNonRoot,
			HTTP01SolverImage:                 c.ACMEHTTP01Config.SolverImage,
			HTTP01SolverNameservers:           c.ACMEHTTP01Config.SolverNameservers,
			HTTP01SolverExtraLabels:           c.ACMEHTTP01Config.SolverExtraLabels,
			HTTP01SolverRuntimeClassName:      c.ACMEHTTP01Config.SolverRuntimeClassName,
			DNS01Nameservers:                  nameservers,
			DNS01CheckRetryPeriod:             c.ACMEDNS01Config.CheckRetryPeriod,
			DNS01CheckAuthoritative:           !c.ACMEDNS01Config.RecursiveNameserversOnly,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: c.MaxConcurrentChallenges},
		IssuerOptions: controller.IssuerOptions{
			ClusterIssuerAmbientCredentials: c.ClusterIssuerAmbientCredentials,
			IssuerAmbientCredentials:        c.IssuerAmbientCredentials,
			ClusterResourceNamespace:        c.ClusterResourceNamespace,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerName:                 c.IngressShimConfig.DefaultIssuerName,
			DefaultIssuerKind:                 c.IngressShimConfig.DefaultIssuerKind,
			DefaultIssuerGroup:                c.IngressShimConfig.DefaultIssuerGroup,
			DefaultAutoCertificateAnnotations: c.IngressShimConfig.DefaultAutoCertificateAnnotations,
			ExtraCertificateAnnotations:       c.IngressShimConfig.ExtraCertificateAnnotations,
		},
		CertificateOptions: controller.CertificateOptions{
			EnableOwnerRef:                           c.EnableCertificateOwnerRef,
			CopiedAnnotationPrefixes:                 c.CopiedAnnotationPrefixes,
			CertificateRequestMinimumBackoffDuration: c.CertificateRequestMinimumBackoffDuration,
			CertificateRequestMaximumBackoffDuration: c.CertificateRequestMaximumBackoffDuration,
		},
	})
	if err != nil {
		return err
	}
	base, err := factory.Build()
	if err != nil {
		return err
	}
	// the chart's liveness probe (/livez on the healthz address)
	listener, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.HealthzListenAddress)
	if err != nil {
		return fmt.Errorf("healthz address %s: %w", c.HealthzListenAddress, err)
	}
	health := healthz.NewServer(c.LeaderElectionConfig.HealthzTimeout)
	g.Go(func() error { return health.Start(ctx, listener) })

	names := enabled(c)
	log.Info("starting cert-manager controller", "controllers", sets.List(names))
	for name, constructor := range controller.Known() {
		if !names.Has(name) {
			continue
		}
		iface, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		g.Go(func() error { return iface.Run(c.NumberOfConcurrentWorkers, ctx) })
	}
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	return g.Wait()
}

func main() {
	ctx, exit := cmdutil.SetupExitHandler(context.Background(), cmdutil.GracefulShutdown)
	defer exit()
	logf.InitLogs()
	defer logf.FlushLogs()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	cfg, err := load(os.Args[1:])
	if err == nil {
		err = run(ctx, cfg)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		logf.Log.Error(err, "cert-manager controller")
		cmdutil.SetExitCode(err)
	}
}
