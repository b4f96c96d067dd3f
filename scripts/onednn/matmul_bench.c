// oneDNN's matmul primitive alone, fp32 against bf16 (bf16 inputs, fp32 output), on a large square and on the
// products of gpt-bench's configurations (b) and (c), with B plain and transposed; oneDNN's own OpenMP threads.
// Prints GFLOP/s and the implementation oneDNN picked. Build and run: scripts/bench-onednn.sh
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
#define CHECK(x) do { dnnl_status_t s = (x); if (s != dnnl_success) { printf("%s -> %d\n", #x, s); exit(1);} } while(0)
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
void run(int M,int N,int K,dnnl_data_type_t dt,int transB){
  dnnl_memory_desc_t a,b,c; dnnl_dims_t ad={M,K}, bd={K,N}, cd={M,N};
  dnnl_dims_t as={K,1}, bs_n={N,1}, bs_t={1,K}, cs={N,1};
  CHECK(dnnl_memory_desc_init_by_strides(&a,2,ad,dt,as));
  CHECK(dnnl_memory_desc_init_by_strides(&b,2,bd,dt,transB?bs_t:bs_n));
  CHECK(dnnl_memory_desc_init_by_strides(&c,2,cd,dnnl_f32,cs));
  dnnl_matmul_desc_t d; CHECK(dnnl_matmul_desc_init(&d,&a,&b,NULL,&c));
  dnnl_primitive_attr_t attr; dnnl_primitive_attr_create(&attr);
  dnnl_primitive_desc_t pd; dnnl_status_t s=dnnl_primitive_desc_create(&pd,&d,attr,eng,NULL);
  if(s){printf("M%d N%d K%d dt%d: unimplemented %d\n",M,N,K,dt,s);return;}
  const char* impl; dnnl_primitive_desc_query(pd,dnnl_query_impl_info_str,0,&impl);
  dnnl_primitive_t p; CHECK(dnnl_primitive_create(&p,pd));
  size_t es = dt==dnnl_f32?4:2;
  void*A=calloc((size_t)M*K,es),*B=calloc((size_t)K*N,es),*C=calloc((size_t)M*N,4);
  dnnl_memory_t ma,mb,mc; dnnl_memory_create(&ma,&a,eng,A);dnnl_memory_create(&mb,&b,eng,B);dnnl_memory_create(&mc,&c,eng,C);
  dnnl_exec_arg_t args[3]={{DNNL_ARG_SRC,ma},{DNNL_ARG_WEIGHTS,mb},{DNNL_ARG_DST,mc}};
  dnnl_primitive_execute(p,st,3,args); dnnl_stream_wait(st);
  double t0=now(); int reps=0; while(now()-t0<0.6){dnnl_primitive_execute(p,st,3,args);reps++;} dnnl_stream_wait(st);
  double el=now()-t0;
  printf("M%5d N%5d K%5d %s tB%d: %7.1f GFLOP/s  %s\n",M,N,K,dt==dnnl_f32?"f32 ":"bf16",transB,2.0*M*N*K*reps/el/1e9,impl);
}
int main(int argc,char**argv){
  CHECK(dnnl_engine_create(&eng,dnnl_cpu,0)); CHECK(dnnl_stream_create(&st,eng,dnnl_stream_default_flags));
  int shapes[][3]={{2048,2048,2048},{2048,1152,384},{2048,384,1536},{2048,1536,384},{384,384,2048},{256,2304,768},{256,768,3072},{256,50304,768},{768,768,256}};
  for(int i=0;i<9;i++){ for(int tb=0;tb<2;tb++){ run(shapes[i][0],shapes[i][1],shapes[i][2],dnnl_f32,tb); run(shapes[i][0],shapes[i][1],shapes[i][2],dnnl_bf16,tb);} }
}
