from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def ab_tests_page(request):
    return HttpResponse("todo")


ab_test_detail_page = ab_tests_page
ab_test_transition = ab_tests_page
