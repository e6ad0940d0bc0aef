package simcluster

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drydock-dev/drydock/internal/ociimage"
)

// WebOptions shape a Deployment of the webserver image on real nodes.
type WebOptions struct {
	// PreStop is the preStop hook's sleep (an httpGet to the server's /prestop); 0: no hook.
	PreStop time.Duration
	// ShutdownDelay keeps the server answering this long after SIGTERM.
	ShutdownDelay time.Duration
	// NodeSelector places the pods (default: on real nodes).
	NodeSelector map[string]string
}

// WebDeployment is a Deployment of replicas webserver pods (ociimage.Webserver) labelled app=name,
// Ready when /readyz answers, for real nodes (it tolerates RealNodeTaint): its image is imported,
// never pulled.
func WebDeployment(namespace, name string, replicas int32, o WebOptions) *appsv1.Deployment {
	d := Deployment(namespace, name, replicas)
	sel := o.NodeSelector
	if sel == nil {
		sel = map[string]string{RealNodeLabel: "true"}
	}
	grace := int64(30)
	spec := &d.Spec.Template.Spec
	spec.NodeSelector, spec.TerminationGracePeriodSeconds = sel, &grace
	spec.Tolerations = []corev1.Toleration{{Key: RealNodeTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	c := &spec.Containers[0]
	c.Image, c.ImagePullPolicy = ociimage.Webserver.Ref, corev1.PullNever
	c.Args = []string{"-listen", ":8080", "-shutdown-delay", o.ShutdownDelay.String()}
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	if o.PreStop > 0 {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: fmt.Sprintf("/prestop?sleep=%s", o.PreStop), Port: intstr.FromInt32(8080)}}}
	}
	return d
}

// WebService is a ClusterIP Service on port 80 for the pods of WebDeployment name.
func WebService(namespace, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}
